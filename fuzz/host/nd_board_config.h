/* Board facts for the host fuzzing build of nd_app.c (no real board). */
#ifndef ND_BOARD_CONFIG_H
#define ND_BOARD_CONFIG_H
#define ND_BOARD_NAME "fuzz-host"
#define ND_CORE_CLOCK_HZ 1000000u
#define ND_TIMER_KIND "fuzz-steps"
#define ND_TIMER_UNITS_PER_TICK 1u
#define ND_UART_BAUD 115200u
#endif
