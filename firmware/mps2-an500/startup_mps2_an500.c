/* Reset and vector table of the emulated Cortex-M7 (QEMU mps2-an500).  QEMU loads the ELF and starts the
 * core like hardware does: SP and PC come from the first two words at address 0. */
#include <stdint.h>

#include "nd_board.h"

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__, __stack_top__;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);

int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
void SysTick_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

void Reset_Handler(void)
{
    uint32_t *src = &__data_load__, *dst = &__data_start__;
    void (**ctor)(void);
    while (dst < &__data_end__) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start__; dst < &__bss_end__;) {
        *dst++ = 0u;
    }
    /* CP10/CP11 full access: without it the first FPU instruction (TFLM, libm) faults. */
    SCB_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    /* No crt0 (-nostartfiles): run C++ static constructors of the TFLM glue ourselves. */
    for (ctor = __init_array_start; ctor < __init_array_end; ++ctor) {
        (*ctor)();
    }
    nd_board_exit(main());
}

/* A fault ends the emulation with a failing exit code instead of hanging the host's run. */
void Fault_Handler(void)
{
    nd_board_exit(1);
}

__attribute__((section(".isr_vector"), used)) static void (*const vector_table[16])(void) = {
    (void (*)(void))(uintptr_t)&__stack_top__,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0,
    0,
    0,
    0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    SysTick_Handler,
};
