/* Board layer for QEMU's mps2-an500 (Cortex-M7): CMSDK UART0 as the host link, SysTick as the timer,
 * semihosting to end the emulation.  Register facts checked against QEMU 7.2. */
#include <stdint.h>

#include "nd_board.h"
#include "nd_board_config.h"

#define UART0_BASE 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(UART0_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(UART0_BASE + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0_BASE + 0x10u))
#define UART_STATE_TX_FULL 0x1u
#define UART_STATE_RX_FULL 0x2u
#define UART_CTRL_TX_EN 0x1u
#define UART_CTRL_RX_EN 0x2u

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_ENABLE 0x1u
#define SYST_TICKINT 0x2u
#define SYST_CLK_CORE 0x4u
#define SYST_MAX 0x00FFFFFFu
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)

#define SEMIHOSTING_SYS_EXIT 0x18u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define ADP_STOPPED_RUNTIME_ERROR 0x20023u

void SysTick_Handler(void);

/* SysTick counts 24 bits; each wrap adds 2^24 here, which makes a 32-bit timer. */
static volatile uint32_t systick_wraps;

void SysTick_Handler(void)
{
    systick_wraps = systick_wraps + 1u;
}

void nd_board_init(void)
{
    UART_BAUDDIV = ND_CORE_CLOCK_HZ / ND_UART_BAUD; /* QEMU ignores the rate, hardware would not */
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN;
    SYST_RVR = SYST_MAX;
    SYST_CVR = 0u;
    SYST_CSR = SYST_ENABLE | SYST_TICKINT | SYST_CLK_CORE;
}

void nd_board_uart_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        while (UART_STATE & UART_STATE_TX_FULL) {
        }
        UART_DATA = data[i];
    }
}

int nd_board_uart_read(void)
{
    if ((UART_STATE & UART_STATE_RX_FULL) == 0u) {
        return -1;
    }
    return (int)(UART_DATA & 0xFFu);
}

uint32_t nd_board_timer_now(void)
{
    uint32_t wraps, count, pending;
    /* A wrap between the reads, or one not yet counted by the handler, would make time jump back 2^24:
     * retry when the handler ran in between, and count a pending wrap ourselves. */
    do {
        wraps = systick_wraps;
        count = SYST_MAX - (SYST_CVR & SYST_MAX);
        pending = SCB_ICSR & ICSR_PENDSTSET;
    } while (wraps != systick_wraps);
    if (pending) {
        wraps += 1u;
        count = SYST_MAX - (SYST_CVR & SYST_MAX);
    }
    return (wraps << 24) + count;
}

void nd_board_exit(int code)
{
    register uint32_t r0 __asm__("r0") = SEMIHOSTING_SYS_EXIT;
    register uint32_t r1 __asm__("r1") = code == 0 ? ADP_STOPPED_APPLICATION_EXIT : ADP_STOPPED_RUNTIME_ERROR;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}
