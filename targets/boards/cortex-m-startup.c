/* Minimal Cortex-M startup for sculpt's on-target checks (any ARMv6-M, v7-M or v7E-M core): the vector table,
   the copy of .data from flash, the zeroing of .bss, the FPU enabled when the code uses it, then main().
   The symbols come from the linker script (boards/mps2.ld). A SysTick_Handler defined elsewhere replaces
   the default one. */
#include <stdint.h>

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[], __stack_top[];
int main(void);
void Reset_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

__attribute__((section(".vectors"), used)) void (*const sc_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top,
    Reset_Handler,
    Default_Handler, /* NMI */
    Default_Handler, /* HardFault */
    Default_Handler, /* MemManage */
    Default_Handler, /* BusFault */
    Default_Handler, /* UsageFault */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
};

void Default_Handler(void)
{
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *s = __data_load;
    uint32_t *d = __data_start;
    while (d < __data_end) {
        *d++ = *s++;
    }
    for (d = __bss_start; d < __bss_end; d++) {
        *d = 0u;
    }
#if defined(__ARM_FP)
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    (void)main();
    for (;;) {
    }
}
