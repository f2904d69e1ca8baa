# docs/demo.gdb — the gdb half of `make demo` (docs/demo.sh runs it with
# `ttvm replay TRACE --batch docs/demo.gdb`).  The same commands, typed at
# the (gdb) prompt of `ttvm replay TRACE`, are the session README.md shows.
#
# The recorded run of bugparse ended with "corruption detected in
# table_len".  Who wrote the bad value?
echo \n(gdb) break report_corruption\n
break report_corruption
echo \n(gdb) continue\n
continue
echo \n(gdb) print/x table_len\n
print/x table_len
echo \n(gdb) watch table_len\n
watch table_len
echo \n(gdb) reverse-continue\n
reverse-continue
echo \n(gdb) backtrace\n
backtrace
echo \n(gdb) frame\n
frame
echo \n(gdb) print key_buf\n
print key_buf
echo \n(gdb) stepi\n
stepi
echo \n(gdb) print/x table_len\n
print/x table_len
echo \n(gdb) monitor when\n
monitor when
echo \nThe last write to table_len is the store into key_buf[i] in parse_key():\n
echo a key of more than 15 characters runs past the 16 bytes of key_buf.\n
