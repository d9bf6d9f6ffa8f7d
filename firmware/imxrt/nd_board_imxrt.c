/* Board layer for the i.MX RT evaluation kits (RT1170 CM7, RT1050) over the MCUXpresso SDK.
 *
 * Only SDK board-support calls that every i.MX RT EVK has are used (BOARD_ConfigMPU, BOARD_InitBootPins,
 * BOARD_BootClockRUN, BOARD_InitDebugConsole and the LPUART driver), so the same file serves both boards; the
 * board facts come from nd_board_config.h and the SDK's board.h. */
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "clock_config.h"
#include "fsl_common.h"
#include "fsl_lpuart.h"
#include "nd_board.h"
#include "nd_board_config.h"
#include "nd_flexram.h"
#include "pin_mux.h"

#if defined(BOARD_DEBUG_UART_BAUDRATE) && (BOARD_DEBUG_UART_BAUDRATE != ND_UART_BAUD)
#error "the SDK debug console baud rate differs from ND_UART_BAUD; define BOARD_DEBUG_UART_BAUDRATE to match"
#endif

#define ND_LPUART ((LPUART_Type *)BOARD_DEBUG_UART_BASEADDR)

/* CoreSight lock access key: the Cortex-M7 DWT ignores writes until it is unlocked.  Its Lock Access Register sits
 * at offset 0xFB0 of the DWT; CMSIS 5's DWT_Type names it LAR, CMSIS 6's (the current MCUXpresso SDK) does not. */
#define ND_DWT_LAR_KEY 0xC5ACCE55u
#define ND_DWT_LAR (*(volatile uint32_t *)(DWT_BASE + 0xFB0u))

static void nd_cycle_counter_start(void)
{
    CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
#if defined(__CORTEX_M) && (__CORTEX_M == 7U)
    ND_DWT_LAR = ND_DWT_LAR_KEY;
#endif
    DWT->CYCCNT = 0u;
    DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
}

#if defined(ND_COPY_SECTIONS)
/* Sections with a flash image that the SDK's start-up code does not know about (nd_board_config.h lists them; the
 * project's linker file defines their symbols): copied word by word, both ends 4-byte aligned by the linker file. */
#define ND_DECLARE_COPY_SECTION(s) extern uint32_t __##s##_load__[], __##s##_start__[], __##s##_end__[];
ND_COPY_SECTIONS(ND_DECLARE_COPY_SECTION)

static void nd_copy_words(const uint32_t *from, uint32_t *to, const uint32_t *end)
{
    while (to < end) {
        *to++ = *from++;
    }
}

#define ND_COPY_SECTION(s) nd_copy_words(__##s##_load__, __##s##_start__, __##s##_end__);

static void nd_copy_sections(void)
{
    ND_COPY_SECTIONS(ND_COPY_SECTION)
    /* Code may be among them: written through the data side, fetched through the instruction side. */
    SCB_CleanDCache();
    SCB_InvalidateICache();
    __DSB();
    __ISB();
}
#endif

void nd_board_init(void)
{
    /* MPU first: it marks SDRAM and OCRAM cacheable (and enables the caches) before anything touches them. */
    BOARD_ConfigMPU();
    /* BOARD_ConfigMPU sizes the DTCM region for the fuse split; nd_flexram.c has enlarged DTCM (board file). */
    nd_flexram_fit_mpu();
#if defined(ND_COPY_SECTIONS)
    /* After the MPU (the regions' attributes) and before any code or data of these sections is used. */
    nd_copy_sections();
#endif
    /* BOARD_InitBootPins, not BOARD_InitPins: on the RT1050 EVKB the latter is empty and only the boot-pins call
     * muxes LPUART1 (BOARD_InitDEBUG_UARTPins); on the RT1170 it calls BOARD_InitPins, which does. */
    BOARD_InitBootPins();
    BOARD_BootClockRUN();
    /* Configures the LPUART clock root and the UART itself at BOARD_DEBUG_UART_BAUDRATE, 8N1. */
    BOARD_InitDebugConsole();
    /* Idempotent in CMSIS 5: kept so a board.c whose MPU setup leaves the caches off still runs at full speed. */
    SCB_EnableICache();
    SCB_EnableDCache();
    nd_cycle_counter_start();
}

void nd_board_uart_write(const uint8_t *data, size_t n)
{
    /* Newer SDKs return status_t, older ones void; the blocking write cannot fail without a timeout set. */
    (void)LPUART_WriteBlocking(ND_LPUART, data, n);
}

int nd_board_uart_read(void)
{
    uint32_t flags = LPUART_GetStatusFlags(ND_LPUART);
    /* An overrun stops reception until cleared; the lost bytes show up as a bad frame on the host side. */
    if ((flags & (uint32_t)kLPUART_RxOverrunFlag) != 0u) {
        (void)LPUART_ClearStatusFlags(ND_LPUART, (uint32_t)kLPUART_RxOverrunFlag);
    }
    if ((flags & (uint32_t)kLPUART_RxDataRegFullFlag) == 0u) {
        return -1;
    }
    return (int)LPUART_ReadByte(ND_LPUART);
}

uint32_t nd_board_timer_now(void)
{
    return DWT->CYCCNT;
}

void nd_board_exit(int code)
{
    (void)code;
    /* Nothing to return to on hardware: wait for the debugger or a reset. */
    __disable_irq();
    for (;;) {
        __WFI();
    }
}
