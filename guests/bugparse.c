/*
 * bugparse — a small record parser with a real memory-corruption bug, the
 * subject of the "who wrote this?" reverse-watchpoint demo.
 *
 * Input (serial, read by a ring-3 task): lines "key=value", value a
 * decimal number; ends with a line "." or a 0x04 byte.  Keys may be up to
 * KEY_MAX (32) characters, but key_buf, where parse_key() copies the key,
 * still has the 16 bytes of an older format.  A key of 16..32 characters
 * overflows key_buf into its neighbour, table_len; with 17 or more the
 * stray bytes make table_len absurd, and table_insert() notices before it
 * uses it: report_corruption() prints
 *   bugparse: corruption detected in table_len (value 0x...)
 * and the guest exits with value 2 (status 5).  With keys of up to 15
 * characters it runs clean: one line per record, then
 *   bugparse: N records, values sum to S
 *   bugparse: ok
 * and exit value 0 (status 1).  guests/inputs/bugparse-{good,bad}.txt.
 *
 * Built -O0 (guests.mk), as one builds code to debug: every variable is
 * in memory and every store is on its source line.
 *
 * The demo: break report_corruption; continue; watch table_len;
 * reverse-continue -> stops in parse_key() at the store into key_buf[i].
 */
#include "sdk.h"
#include "user.h"

#define KEY_MAX 32 /* longest key the record format allows */
#define TABLE_MAX 8

struct entry {
    char key[KEY_MAX + 1];
    uint64_t value;
};

static struct entry table[TABLE_MAX];

/* The parser's state, in this order (the overflow runs from one into the
 * next).  BUG: key_buf was sized for the old 15-character keys. */
static char key_buf[16];
static unsigned int table_len; /* entries used in table[] */

/* Copies the key of line (up to '=') into key_buf; returns its length,
 * or -1 when line has no '=', an empty key or one over KEY_MAX. */
static int parse_key(const char *line)
{
    int n = 0;

    while (line[n] != '=') {
        if (line[n] == '\0')
            return -1;
        n++;
    }
    if (n == 0 || n > KEY_MAX)
        return -1;
    for (int i = 0; i < n; i++)
        key_buf[i] = line[i]; /* overflows key_buf when n > 15 */
    key_buf[n] = '\0';
    return n;
}

__attribute__((noinline)) static void report_corruption(const char *var,
                                                        uint64_t value)
{
    user_printf("bugparse: corruption detected in %s (value %#lx)\n", var,
                value);
    user_exit(2);
}

static int table_insert(uint64_t value)
{
    if (table_len > TABLE_MAX)
        report_corruption("table_len", table_len);
    if (table_len == TABLE_MAX)
        return -1;
    memcpy(table[table_len].key, key_buf, strlen(key_buf) + 1);
    table[table_len].value = value;
    table_len++;
    return 0;
}

static void parse_line(unsigned long lineno, const char *line)
{
    int klen = parse_key(line);
    const char *v;
    uint64_t value;

    if (klen < 0) {
        user_printf("bugparse: line %lu: no key=value, or key longer than "
                    "%d characters: skipped\n",
                    lineno, KEY_MAX);
        return;
    }
    v = line + klen + 1;
    if (sdk_parse_u64(v, strlen(v), &value) < 0) {
        user_printf("bugparse: line %lu: value is not a number: skipped\n",
                    lineno);
        return;
    }
    if (table_insert(value) < 0) {
        user_printf("bugparse: line %lu: table full: skipped\n", lineno);
        return;
    }
    user_printf("bugparse: record %u: %s = %lu\n", table_len, key_buf, value);
}

static long bugparse_task(void *arg)
{
    char line[128];
    unsigned long lineno = 0;
    uint64_t sum = 0;

    (void)arg;
    while (user_readline(line, sizeof(line)) >= 0)
        parse_line(++lineno, line);
    for (unsigned i = 0; i < table_len && i < TABLE_MAX; i++)
        sum += table[i].value;
    user_printf("bugparse: %u records, values sum to %lu\n", table_len, sum);
    user_printf("bugparse: ok\n");
    return 0;
}

int guest_main(void)
{
    sdk_printf("bugparse: reading key=value records; end with a line "
               "\".\" or Ctrl-D\n");
    return (int)sdk_task_run(bugparse_task, NULL);
}
