/*
 * sdk.h — the ring-0 API of the ttvm guest SDK.
 *
 * A guest is a freestanding x86-64 program linked with the SDK.  The SDK
 * boots (Multiboot v1 or ttvm's ELF64 direct boot), sets up its own GDT,
 * TSS, IDT, page tables (identity map of the first 1 GiB), the PIC (vectors
 * 0x20..0x2f, all masked) and COM1, then calls guest_main() in
 * ring 0 with interrupts off.  guest_main's return value is written to the
 * debug-exit port.
 *
 * Ring-0 code must be compiled -mgeneral-regs-only (no SSE: under kvm-pvm
 * ring 0 is emulated and SSE there is an emulation failure; `int3`/`int n`
 * likewise).  Heavy work belongs in ring 3 (sdk_task_run), which runs
 * natively; see user.h for what ring-3 code may call.
 */
#ifndef GUEST_SDK_H
#define GUEST_SDK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi.h"
#include "lib.h"
#include "ports.h"

/* Provided by every guest: runs in ring 0 with interrupts off; returns the
 * debug-exit value (0 = success, exit status 1). */
int guest_main(void);

/* ---- boot information ---- */

/* "multiboot" or "elf64": how this image was entered. */
const char *sdk_boot_path(void);
/* The command line from the Multiboot info block, without the image path
 * that QEMU and GRUB put first (a first word containing '/' or ending in
 * ".mb"/".elf" is dropped).  Never NULL. */
const char *sdk_cmdline(void);
/* Value of the word KEY=VALUE on the command line, as a number (decimal,
 * or hex with 0x); dflt when absent or malformed. */
uint64_t sdk_arg_u64(const char *key, uint64_t dflt);
/* Whether the command line holds the word KEY=VALUE. */
bool sdk_arg_is(const char *key, const char *value);
/* Highest end of usable RAM (from the memory map, else mem_upper). */
uint64_t sdk_mem_bytes(void);

/* ---- console (COM1) and exit ---- */

void sdk_putc(char c);
void sdk_write(const void *buf, size_t len);
int sdk_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes value to the debug-exit port (status (value << 1) | 1), then
 * halts with interrupts off should nothing be listening. */
_Noreturn void sdk_exit(unsigned value);
_Noreturn void sdk_panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* ---- interrupts ---- */

typedef void (*sdk_irq_fn)(void);
/* Installs fn for IRQ line irq (0..15) and unmasks it. */
void sdk_irq_set(unsigned irq, sdk_irq_fn fn);
/* sti; hlt; cli — waits for the next interrupt, which has run on return. */
void sdk_wait_for_interrupt(void);

/* ---- timer: PIT channel 0 on IRQ0 ---- */

/* Starts the PIT at about hz interrupts per second (idempotent: a running
 * timer keeps its rate). */
void sdk_timer_start(unsigned hz);
uint64_t sdk_ticks(void);
/* Waits (sti; hlt) until n more ticks have passed; starts the timer at
 * SDK_TIMER_HZ when it is not running. */
void sdk_sleep_ticks(uint64_t n);
#define SDK_TIMER_HZ 100
/* The tick counter; ring 3 may read it directly (user_ticks_now()). */
extern volatile uint64_t sdk_tick_count;

/* ---- serial input (COM1 receive interrupt, IRQ4) ---- */

/* Copies up to len received bytes into buf; blocks (sti; hlt) until at
 * least one is there.  Returns the count (>= 1, 0 when len is 0). */
size_t sdk_serial_read(void *buf, size_t len);

/* ---- other devices ---- */

uint8_t sdk_cmos_read(uint8_t reg);
uint32_t sdk_rng32(void); /* inl from PORT_RNG */

/* ---- ring-3 tasks ---- */

/* Lets ring-3 code access ports [port, port + count) (TSS I/O bitmap). */
void sdk_io_allow(uint16_t port, unsigned count);
/* Runs fn(arg) in ring 3 on the user stack until it returns or calls
 * user_exit.  Returns its exit code (0..255), or TASK_KILLED | vector when
 * an exception it did not expect ended it.  Tasks get pids 1, 2, ... */
long sdk_task_run(long (*fn)(void *arg), void *arg);

#endif /* GUEST_SDK_H */
