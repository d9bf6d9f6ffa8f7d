/* FlexRAM bank split of the i.MX RT board layer (values from the generated nd_board_config.h). */
#ifndef ND_FLEXRAM_H
#define ND_FLEXRAM_H

/* The split itself is applied by SystemInitHook() in nd_flexram.c, which the SDK's SystemInit() calls before the
 * start-up code copies .data and clears .bss.  This one runs after BOARD_ConfigMPU(): that function sizes the DTCM
 * MPU region for the fuse default, and the rest of the enlarged DTCM would fall into its Device-memory background
 * region (no unaligned accesses, no speculation), so the DTCM region is widened to cover the whole new DTCM. */
void nd_flexram_fit_mpu(void);

#endif /* ND_FLEXRAM_H */
