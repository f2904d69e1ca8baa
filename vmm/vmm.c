/*
 * vmm.c — the machine: one anonymous RAM mapping, the device bus, one
 * vCPU on the chosen backend, the guest's CPUID table, and the entry
 * points that tie them together (boot, device state, error names).  The
 * run loop lives in run.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm/vmm_int.h"

static const struct {
    int code;
    const char *msg;
} errors[] = {
    { VMM_E_IMAGE, "malformed or unsupported guest image" },
    { VMM_E_RANGE, "address or size outside guest RAM" },
    { VMM_E_NOKVM, "/dev/kvm is missing or unusable" },
    { VMM_E_KVM, "a KVM ioctl failed unexpectedly" },
    { VMM_E_UNICORN, "Unicorn reported an error" },
    { VMM_E_UNSUPPORTED, "not supported by this backend or host" },
    { VMM_E_STATE, "malformed or incompatible CPU or device state" },
    { VMM_E_PAGING, "guest uses non-identity paging" },
    { VMM_E_ARG, "invalid argument" },
    { VMM_E_NOSTEP, "this host cannot single-step the guest there" },
};

const char *vmm_strerror(int err)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == err)
            return errors[i].msg;
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

static void report_stderr(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "ttvm: %s\n", msg);
}

static int make_vcpu(struct vmm *vm, const char *backend)
{
    const struct vcpu_ops *ops = vcpu_ops_by_name(backend ? backend : "kvm");
    if (!ops) {
        snprintf(vm->detail, sizeof vm->detail, "unknown backend '%s'",
                 backend);
        return VMM_E_ARG;
    }
    struct vcpu_config vc = {
        .ops = ops,
        .ram = vm->ram,
        .ram_size = vm->ram_size,
        .cpuid = &vm->cpuid,
        .io = vmm_bus_io(vm, &vc.io_ctx),
    };
    int rc = vcpu_create(&vc, &vm->cpu);
    if (rc == VMM_E_NOKVM) {
        const struct vmm_host_caps *h = vmm_host_probe();
        snprintf(vm->detail, sizeof vm->detail, "%s",
                 h->detail[0] ? h->detail : "/dev/kvm is unusable");
    } else if (rc) {
        snprintf(vm->detail, sizeof vm->detail, "creating the %s vCPU: %s",
                 ops->name, vmm_strerror(rc));
    }
    return rc;
}

int vmm_create(const struct vmm_config *cfg, struct vmm **out)
{
    if (!cfg || cfg->mem_size < (2ull << 20) ||
        cfg->mem_size % (2ull << 20) || cfg->mem_size > VMM_MEM_MAX)
        return VMM_E_ARG;
    struct vmm *vm = calloc(1, sizeof *vm);
    if (!vm)
        return -ENOMEM;
    int rc = -ENOMEM;
    vm->ram_size = cfg->mem_size;
    vm->ram = mmap(NULL, vm->ram_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (vm->ram == MAP_FAILED) {
        vm->ram = NULL;
        rc = -errno;
        goto fail;
    }
    vm->serial_in_fd = cfg->serial_in_fd;
    if (cfg->host) {
        vm->host = cfg->host;
        vm->host_ctx = cfg->host_ctx;
    } else {
        if (!(vm->real = calloc(1, sizeof *vm->real)))
            goto fail;
        vm->real->in_fd = cfg->serial_in_fd;
        vm->real->out_fd = cfg->serial_out_fd;
        vm->host = &vmm_host_real;
        vm->host_ctx = vm->real;
    }
    dev_bus_init(&vm->bus, vm->host, vm->host_ctx);
    vm->bus.report = report_stderr;
    if (cfg->cpuid) {
        if (cfg->cpuid->nent > VMM_CPUID_MAX) {
            rc = VMM_E_ARG;
            goto fail;
        }
        vm->cpuid = *cfg->cpuid;
    } else if ((rc = vmm_cpuid_build(&vm->cpuid))) {
        goto fail;
    }
    if ((rc = make_vcpu(vm, cfg->backend)))
        goto fail;
    *out = vm;
    return 0;
fail:
    vmm_destroy(vm);
    return rc;
}

void vmm_destroy(struct vmm *vm)
{
    if (!vm)
        return;
    if (vm->real)
        vmm_host_real_flush(vm->real);
    vcpu_destroy(vm->cpu);
    if (vm->ram)
        munmap(vm->ram, vm->ram_size);
    free(vm->real);
    free(vm);
}

const char *vmm_error_detail(const struct vmm *vm) { return vm->detail; }
uint8_t *vmm_ram(struct vmm *vm) { return vm->ram; }
uint64_t vmm_ram_size(const struct vmm *vm) { return vm->ram_size; }
struct vcpu *vmm_vcpu(struct vmm *vm) { return vm->cpu; }
const struct vmm_cpuid *vmm_cpuid(const struct vmm *vm) { return &vm->cpuid; }

void *vmm_gpa_ptr(struct vmm *vm, uint64_t gpa, uint64_t len)
{
    if (gpa > vm->ram_size || len > vm->ram_size - gpa)
        return NULL;
    return vm->ram + gpa;
}

int vmm_gva_to_gpa(struct vmm *vm, const struct vmm_sregs *s, uint64_t gva,
                   bool write, uint64_t *gpa)
{
    int rc = vmm_walk(vm->ram, vm->ram_size, s, gva, write, gpa);
    if (rc == 0 && *gpa >= vm->ram_size)
        return VMM_E_RANGE;
    return rc;
}

unsigned vmm_code_read(struct vmm *vm, const struct vmm_sregs *s,
                       uint64_t rip, uint8_t *b, unsigned n)
{
    return vmm_code_fetch(vm->ram, vm->ram_size, s, rip, b, n);
}

int vmm_boot(struct vmm *vm, const void *img, size_t len,
             enum vmm_boot_mode mode, const char *cmdline,
             struct vmm_image_info *info)
{
    struct vmm_cpu_state st;
    vm->detail[0] = '\0';
    int rc = vmm_load(vm->ram, vm->ram_size, img, len, mode, cmdline,
                      !vm->booted, &st, info);
    if (rc) {
        snprintf(vm->detail, sizeof vm->detail, "%s", info->error);
        return rc;
    }
    vm->booted = true;
    vcpu_ram_changed(vm->cpu, 0, vm->ram_size);
    if ((rc = vcpu_set_state(vm->cpu, &st)))
        snprintf(vm->detail, sizeof vm->detail,
                 "setting the boot state: %s", vmm_strerror(rc));
    return rc;
}

long vmm_devices_save(struct vmm *vm, void *buf, size_t cap)
{
    return dev_bus_save(&vm->bus, buf, cap);
}

int vmm_devices_restore(struct vmm *vm, const void *buf, size_t len)
{
    return dev_bus_restore(&vm->bus, buf, len);
}

const struct vmm_io_ops *vmm_bus_io(struct vmm *vm, void **ctx)
{
    static const struct vmm_io_ops bus_io = {
        .pio = dev_bus_pio,
        .mmio = dev_bus_mmio,
    };
    *ctx = &vm->bus;
    return &bus_io;
}

void vmm_format_regs(char *buf, size_t cap, const struct vmm_regs *r,
                     const struct vmm_sregs *s)
{
    snprintf(buf, cap,
             "RIP=0x%llx RFLAGS=0x%llx CPL=%d RSP=0x%llx RAX=0x%llx "
             "RBX=0x%llx RCX=0x%llx RDX=0x%llx RSI=0x%llx RDI=0x%llx "
             "RBP=0x%llx R8=0x%llx R9=0x%llx R10=0x%llx R11=0x%llx "
             "R12=0x%llx R13=0x%llx R14=0x%llx R15=0x%llx CR0=0x%llx "
             "CR2=0x%llx CR3=0x%llx CR4=0x%llx EFER=0x%llx",
             (unsigned long long)r->rip, (unsigned long long)r->rflags,
             vmm_cpl(s), (unsigned long long)r->rsp,
             (unsigned long long)r->rax, (unsigned long long)r->rbx,
             (unsigned long long)r->rcx, (unsigned long long)r->rdx,
             (unsigned long long)r->rsi, (unsigned long long)r->rdi,
             (unsigned long long)r->rbp, (unsigned long long)r->r8,
             (unsigned long long)r->r9, (unsigned long long)r->r10,
             (unsigned long long)r->r11, (unsigned long long)r->r12,
             (unsigned long long)r->r13, (unsigned long long)r->r14,
             (unsigned long long)r->r15, (unsigned long long)s->cr0,
             (unsigned long long)s->cr2, (unsigned long long)s->cr3,
             (unsigned long long)s->cr4, (unsigned long long)s->efer);
}
