# guests.mk — the guest SDK and sample guests (included by the root
# Makefile).  For each NAME in GUEST_NAMES:
#   $(BUILD)/guests/NAME.elf  ELF64, entry _start64 (ttvm direct boot), -g
#   $(BUILD)/guests/NAME.mb   ELF32 i386 Multiboot v1 image of the same link,
#                             entry _start32 (ttvm Multiboot path, QEMU -kernel)
# A guest is guests/NAME.c (ring-0 flags: it may run in ring 0) plus an
# optional guests/NAME_user.c compiled with normal code generation (ring 3
# only; SSE allowed).  Flags are the guests' own, independent of the host
# build's OPT/SAN, so `make asan` builds the same guests under build-asan.

GUEST_NAMES := hello echo compute timer exceptions iostorm rng syscalls \
               bugparse memwrite
GUEST_CC      ?= gcc
GUEST_OBJCOPY ?= objcopy
GUEST_NM      ?= nm
GUEST_DIR     := $(BUILD)/guests

GUEST_CFLAGS := -std=gnu11 -g -ffreestanding -fno-pic -fno-pie \
    -fno-stack-protector -fcf-protection=none -fno-asynchronous-unwind-tables \
    -fno-omit-frame-pointer -fno-tree-loop-distribute-patterns \
    -Iguests/sdk $(WARN) -MMD -MP
# Ring 0 (SDK and guests/NAME.c): no SSE, no red zone.
GUEST_KCFLAGS := $(GUEST_CFLAGS) -O2 -mgeneral-regs-only -mno-red-zone
# Ring-3-only code (guests/NAME_user.c).
GUEST_UCFLAGS := $(GUEST_CFLAGS) -O2
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,guests/sdk/link.ld \
    -Wl,--build-id=none -Wl,-z,max-page-size=0x1000

GUEST_SDK_C   := $(wildcard guests/sdk/*.c)
GUEST_SDK_S   := $(wildcard guests/sdk/*.S)
GUEST_U_SRCS  := $(wildcard guests/*_user.c)
GUEST_K_OBJS  := $(patsubst guests/%.c,$(GUEST_DIR)/%.o, \
                   $(GUEST_SDK_C) $(GUEST_NAMES:%=guests/%.c))
GUEST_U_OBJS  := $(patsubst guests/%.c,$(GUEST_DIR)/%.o,$(GUEST_U_SRCS))
GUEST_S_OBJS  := $(patsubst guests/%.S,$(GUEST_DIR)/%.o,$(GUEST_SDK_S))
GUEST_SDK_OBJS := $(patsubst guests/%.c,$(GUEST_DIR)/%.o,$(GUEST_SDK_C)) \
                  $(GUEST_S_OBJS)
GUEST_IMAGES  := $(foreach g,$(GUEST_NAMES),$(GUEST_DIR)/$(g).elf \
                   $(GUEST_DIR)/$(g).mb)

# guests/paging/ turns on a non-identity mapping, which the Unicorn
# backend cannot execute: built apart from GUEST_NAMES (into
# $(GUEST_DIR)/paging/) so that the tests running every sample guest
# under Unicorn do not pick it up; tests/integration/replay_paging.sh
# uses it.
GUEST_K_OBJS  += $(GUEST_DIR)/paging/paging.o
GUEST_IMAGES  += $(GUEST_DIR)/paging/paging.elf $(GUEST_DIR)/paging/paging.mb

# guests/undef/ runs an undefined opcode in ring 0 and ends in the SDK's
# panic by design (tests/integration/run_guests.sh checks the #UD report
# against QEMU): apart from GUEST_NAMES for the same reason.
GUEST_K_OBJS  += $(GUEST_DIR)/undef/undef.o
GUEST_IMAGES  += $(GUEST_DIR)/undef/undef.elf $(GUEST_DIR)/undef/undef.mb

# bugparse is the reverse-debugging demo: built as one would for debugging,
# so that every variable lives in memory and every store is where the
# source says it is.
$(GUEST_DIR)/bugparse.o: GUEST_OPT := -O0

guests: $(GUEST_IMAGES)

$(GUEST_K_OBJS): $(GUEST_DIR)/%.o: guests/%.c
	@mkdir -p $(@D)
	@echo "  CC      $< (guest)"
	$(Q)$(GUEST_CC) $(GUEST_KCFLAGS) $(GUEST_OPT) -c -o $@ $<

$(GUEST_U_OBJS): $(GUEST_DIR)/%.o: guests/%.c
	@mkdir -p $(@D)
	@echo "  CC      $< (guest, ring 3)"
	$(Q)$(GUEST_CC) $(GUEST_UCFLAGS) -c -o $@ $<

$(GUEST_S_OBJS): $(GUEST_DIR)/%.o: guests/%.S
	@mkdir -p $(@D)
	@echo "  AS      $< (guest)"
	$(Q)$(GUEST_CC) $(GUEST_KCFLAGS) -c -o $@ $<

# Each NAME_user.c joins NAME's link.
$(foreach u,$(GUEST_U_SRCS),$(eval \
  $(GUEST_DIR)/$(notdir $(u:_user.c=)).elf: $(GUEST_DIR)/$(notdir $(u:.c=.o))))

$(GUEST_DIR)/%.elf: $(GUEST_DIR)/%.o $(GUEST_SDK_OBJS) guests/sdk/link.ld
	@echo "  LD      $@"
	$(Q)$(GUEST_CC) $(GUEST_LDFLAGS) -o $@ $(filter %.o,$^)

# Same bytes at the same addresses, as ELF32 with the 32-bit entry.
$(GUEST_DIR)/%.mb: $(GUEST_DIR)/%.elf
	@echo "  MB      $@"
	$(Q)start=$$($(GUEST_NM) $< | awk '$$3 == "_start32" { print $$1 }'); \
	test -n "$$start" || { echo "$<: no _start32" >&2; exit 1; }; \
	$(GUEST_OBJCOPY) -O elf32-i386 --strip-debug --set-start=0x$$start $< $@
