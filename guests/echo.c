/*
 * echo — reads serial input line by line in a ring-3 task (COM1 receive
 * interrupt, IRQ4) and writes each line back numbered and in upper case.
 *
 * Input: lines ending in '\n' ('\r' is dropped); the input ends with a
 * 0x04 byte (Ctrl-D) or a line that is exactly ".".
 * Output: "echo: type lines; end with a line \".\" or Ctrl-D", then for each
 * line "N: LINE IN UPPER CASE", then "echo: L lines, B bytes" where B
 * counts the line contents without line ends.  Exit value 0 (status 1).
 */
#include "sdk.h"
#include "user.h"

static long echo_task(void *arg)
{
    char line[160];
    unsigned long lines = 0, bytes = 0;
    long n;

    (void)arg;
    while ((n = user_readline(line, sizeof(line))) >= 0) {
        for (long i = 0; i < n; i++)
            if (line[i] >= 'a' && line[i] <= 'z')
                line[i] = (char)(line[i] - 'a' + 'A');
        lines++;
        bytes += (unsigned long)n;
        user_printf("%lu: %s\n", lines, line);
    }
    user_printf("echo: %lu lines, %lu bytes\n", lines, bytes);
    return 0;
}

int guest_main(void)
{
    sdk_printf("echo: type lines; end with a line \".\" or Ctrl-D\n");
    return sdk_task_run(echo_task, NULL) == 0 ? 0 : 1;
}
