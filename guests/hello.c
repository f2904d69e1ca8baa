/*
 * hello — the smallest guest: reports how it booted, then says hello from
 * a ring-3 task.  Parameters: none (the command line is echoed back).
 */
#include "sdk.h"
#include "user.h"

static long hello_task(void *arg)
{
    (void)arg;
    user_printf("hello from ring 3 (pid %ld)\n", user_getpid());
    return 0;
}

int guest_main(void)
{
    uint64_t mib = (sdk_mem_bytes() + (1 << 19)) >> 20;
    long code;

    sdk_printf("hello: booted via %s, %lu MiB RAM\n", sdk_boot_path(), mib);
    sdk_printf("hello: cmdline \"%s\"\n", sdk_cmdline());
    code = sdk_task_run(hello_task, NULL);
    sdk_printf("hello: task exited with %ld\n", code);
    return code == 0 ? 0 : 1;
}
