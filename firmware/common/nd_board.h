/* The thin board layer: everything the portable core needs from a board, nothing more.
 * Each layer directory (firmware/imxrt for the i.MX RT EVKs, firmware/mps2-an500 for the emulated board) implements it
 * in nd_board_<layer>.c; the board's facts (name, clock, timer kind) come from the generated nd_board_config.h. */
#ifndef ND_BOARD_H
#define ND_BOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Clocks, pins, caches, debug UART, timer.  Called once before anything else. */
void nd_board_init(void);

/* Blocking write of n bytes to the host link (debug UART). */
void nd_board_uart_write(const uint8_t *data, size_t n);

/* Next received byte (0..255), or -1 when none is waiting.  Never blocks. */
int nd_board_uart_read(void);

/* Free-running timer, wraps modulo 2^32: DWT CYCCNT on the RT boards (core cycles), SysTick extended in
 * software on the emulator (ND_TIMER_UNITS_PER_TICK emulated instructions per tick). */
uint32_t nd_board_timer_now(void);

/* Stop: semihosting exit on the emulator, a halt loop on hardware. */
void nd_board_exit(int code);

#ifdef __cplusplus
}
#endif

#endif /* ND_BOARD_H */
