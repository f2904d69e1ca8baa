# ttvm — one non-recursive Makefile (kvmtool style).
#
#   make          build build/ttvm and the sample guests
#   make test     build, then run every test (unit + integration)
#   make demo     record the bugparse guest and run a reverse-debugging session
#   make bench    run the benchmarks (prints ratios measured side by side)
#   make asan     build with AddressSanitizer + UBSan into build-asan/ and test
#
# Every target first runs .ci/deps, which installs missing Debian packages
# (once; it is a no-op when they are present).

BUILD ?= build
# The module library rules below are generated before `all`; without this
# a bare `make` would build only the first library.
.DEFAULT_GOAL := all
CC    ?= gcc
V     ?= 0
Q      = $(if $(filter 1,$(V)),,@)

ifeq ($(filter clean distclean,$(MAKECMDGOALS)),)
DEPS_STATUS := $(shell ./.ci/deps >&2 && echo ok)
ifneq ($(DEPS_STATUS),ok)
$(error dependency installation failed; see the message above)
endif
endif

PKG_LIBS  := unicorn capstone lmdb libzstd libsodium
PKG_CFLAGS = $(shell pkg-config --cflags $(PKG_LIBS) 2>/dev/null)
PKG_LDLIBS = $(shell pkg-config --libs $(PKG_LIBS) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -Wformat=2 -Wundef -Wvla -Wpointer-arith
OPT  ?= -O2 -g
SAN  ?=
CPPFLAGS := -I. -D_GNU_SOURCE
CFLAGS   := -std=gnu11 $(OPT) $(WARN) $(SAN) -fno-strict-aliasing \
            -MMD -MP $(PKG_CFLAGS)
LDFLAGS  := $(SAN)
LDLIBS   := $(PKG_LDLIBS) -lreadline -lpthread -lm

# Link order: higher layers first.
MODULES := debugger recorder replayer vmm storage

define module_rules
$(1)_SRCS := $$(wildcard $(1)/*.c)
$(1)_OBJS := $$(patsubst %.c,$(BUILD)/%.o,$$($(1)_SRCS))
$(BUILD)/lib$(1).a: $$($(1)_OBJS)
	@mkdir -p $$(@D)
	$$(Q)rm -f $$@
	$$(Q)$$(if $$^,ar rcs $$@ $$^,ar rcs $$@)
endef
$(foreach m,$(MODULES),$(eval $(call module_rules,$(m))))

MODULE_LIBS := $(foreach m,$(MODULES),$(BUILD)/lib$(m).a)
CMD_SRCS    := $(wildcard cmd/*.c)
CMD_OBJS    := $(patsubst %.c,$(BUILD)/%.o,$(CMD_SRCS))

.PHONY: all test unit integration demo bench asan clean guests
# Keep objects of tests, tools and benches (make would delete them as
# intermediates and relink every time).
.SECONDARY:
all: $(BUILD)/ttvm guests

$(BUILD)/ttvm: $(CMD_OBJS) $(MODULE_LIBS)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CMD_OBJS) $(MODULE_LIBS) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# ---- sample guests (their own flags: freestanding, no red zone) ----------
include guests/guests.mk

# ---- tests -----------------------------------------------------------------
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
TEST_SUPPORT_SRCS := $(wildcard tests/support/*.c)
TEST_SUPPORT_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(TEST_SUPPORT_SRCS))

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(TEST_SUPPORT_OBJS) $(MODULE_LIBS)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT_OBJS) $(MODULE_LIBS) \
		$(LDLIBS) -lcriterion

# Test tools may use tests/support too (as an archive: a tool pulls in only
# the helpers it references, so none needs Criterion).
TEST_SUPPORT_LIB := $(BUILD)/tests/support/libsupport.a
$(TEST_SUPPORT_LIB): $(TEST_SUPPORT_OBJS)
	@mkdir -p $(@D)
	$(Q)rm -f $@
	$(Q)$(if $^,ar rcs $@ $^,ar rcs $@)

TEST_TOOLS_SRCS := $(wildcard tests/tools/*.c)
TEST_TOOLS      := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TEST_TOOLS_SRCS))
$(BUILD)/tests/tools/%: $(BUILD)/tests/tools/%.o $(TEST_SUPPORT_LIB) $(MODULE_LIBS)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT_LIB) $(MODULE_LIBS) $(LDLIBS)

test: all $(UNIT_BINS) $(TEST_TOOLS)
	$(Q)BUILD=$(BUILD) ./tests/run

unit: all $(UNIT_BINS)
	$(Q)BUILD=$(BUILD) ./tests/run --unit-only

# ---- demo, bench, sanitizers ----------------------------------------------
demo: all
	$(Q)BUILD=$(BUILD) ./docs/demo.sh

BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(MODULE_LIBS)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(MODULE_LIBS) $(LDLIBS)

bench: all $(BENCH_BINS)
	$(Q)BUILD=$(BUILD) ./bench/run

asan:
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g" \
		SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
