/* FlexRAM bank split for the i.MX RT boards (RT1050, RT1170 CM7), from the generated nd_board_config.h.
 *
 * The fuse default split leaves the AOT tensor arena no room in DTCM, and the SDK's start-up code never
 * reprograms FlexRAM, so this file does, at the only safe moment: in SystemInitHook(), which the SDK's
 * SystemInit() calls last, and which the start-up code (Reset_Handler) runs before it copies .data and
 * .ram_function and clears .bss.  Nothing lives in ITCM, DTCM or FlexRAM OCRAM yet: with the flexspi_nor_sdram
 * build configuration the stack, .data and .bss are in SDRAM (which the boot ROM brings up from the DCD/XMCD in
 * the boot header) and this code executes in place from flash, so no bank changes owner under a live access.
 * Everything here must keep to that: no static data (it is not initialised yet), only registers. */
#include <stdint.h>

#include "fsl_device_registers.h"
#include "nd_board_config.h"
#include "nd_flexram.h"

#if defined(ND_FLEXRAM_BANK_CFG)

#if defined(IOMUXC_GPR_GPR18_FLEXRAM_BANK_CFG_HIGH_MASK) != defined(ND_FLEXRAM_GPR18)
#error "the board file's bank_cfg_registers do not match this device's IOMUXC_GPR (GPR17 only vs GPR17+GPR18)"
#endif

#if defined(ND_FLEXRAM_GPR14_DTCM_SZ)
/* Newer SDK device headers (e.g. MIMXRT1052.h of SDK 2.16) no longer name the CM7 TCM size fields of GPR14 nor the
 * TCM enables of GPR16, which older headers and the reference manual define: GPR14[19:16] CM7_CFGITCMSZ,
 * GPR14[23:20] CM7_CFGDTCMSZ, GPR16[0] INIT_ITCM_EN, GPR16[1] INIT_DTCM_EN.  The SDK names are used when present. */
#if defined(IOMUXC_GPR_GPR14_CM7_CFGDTCMSZ_MASK)
#define ND_GPR14_TCM_SZ_MASK (IOMUXC_GPR_GPR14_CM7_CFGITCMSZ_MASK | IOMUXC_GPR_GPR14_CM7_CFGDTCMSZ_MASK)
#define ND_GPR14_TCM_SZ(itcm, dtcm) (IOMUXC_GPR_GPR14_CM7_CFGITCMSZ(itcm) | IOMUXC_GPR_GPR14_CM7_CFGDTCMSZ(dtcm))
#else
#define ND_GPR14_TCM_SZ_MASK 0x00FF0000u
#define ND_GPR14_TCM_SZ(itcm, dtcm) ((((uint32_t)(itcm)) << 16) | (((uint32_t)(dtcm)) << 20))
#endif
#if defined(IOMUXC_GPR_GPR16_INIT_DTCM_EN_MASK)
#define ND_GPR16_INIT_ITCM_EN IOMUXC_GPR_GPR16_INIT_ITCM_EN_MASK
#define ND_GPR16_INIT_DTCM_EN IOMUXC_GPR_GPR16_INIT_DTCM_EN_MASK
#else
#define ND_GPR16_INIT_ITCM_EN 0x1u
#define ND_GPR16_INIT_DTCM_EN 0x2u
#endif
#endif /* ND_FLEXRAM_GPR14_DTCM_SZ */

void SystemInitHook(void)
{
    uint32_t gpr16;

    /* Every earlier access (the boot ROM's, a debugger's) completes before the banks change owner. */
    __DSB();
#if defined(ND_FLEXRAM_GPR18)
    /* RT1170: banks 0-7 in GPR17[15:0], 8-15 in GPR18[15:0]; the upper halves are write-protect bits, kept. */
    IOMUXC_GPR->GPR17 = (IOMUXC_GPR->GPR17 & ~IOMUXC_GPR_GPR17_FLEXRAM_BANK_CFG_LOW_MASK) |
                        IOMUXC_GPR_GPR17_FLEXRAM_BANK_CFG_LOW(ND_FLEXRAM_GPR17);
    IOMUXC_GPR->GPR18 = (IOMUXC_GPR->GPR18 & ~IOMUXC_GPR_GPR18_FLEXRAM_BANK_CFG_HIGH_MASK) |
                        IOMUXC_GPR_GPR18_FLEXRAM_BANK_CFG_HIGH(ND_FLEXRAM_GPR18);
#else
    IOMUXC_GPR->GPR17 = IOMUXC_GPR_GPR17_FLEXRAM_BANK_CFG(ND_FLEXRAM_GPR17);
#endif
    gpr16 = IOMUXC_GPR->GPR16;
#if defined(ND_FLEXRAM_GPR14_DTCM_SZ)
    /* The core's TCM windows must be powers of two; the generator rounds them up over the banks behind them. */
    IOMUXC_GPR->GPR14 = (IOMUXC_GPR->GPR14 & ~ND_GPR14_TCM_SZ_MASK) |
                        ND_GPR14_TCM_SZ(ND_FLEXRAM_GPR14_ITCM_SZ, ND_FLEXRAM_GPR14_DTCM_SZ);
    gpr16 &= ~(ND_GPR16_INIT_ITCM_EN | ND_GPR16_INIT_DTCM_EN);
#if ND_FLEXRAM_ITCM_BYTES > 0u
    gpr16 |= ND_GPR16_INIT_ITCM_EN;
#endif
#if ND_FLEXRAM_DTCM_BYTES > 0u
    gpr16 |= ND_GPR16_INIT_DTCM_EN;
#endif
#endif
    /* Last: from here on the banks follow GPR17/GPR18 instead of the fuses. */
    IOMUXC_GPR->GPR16 = gpr16 | IOMUXC_GPR_GPR16_FLEXRAM_BANK_CFG_SEL_MASK;
    /* The new mapping is in force before the start-up code's first TCM/OCRAM access and before any fetch. */
    __DSB();
    __ISB();
}

/* Smallest MPU region SIZE field (region = 2^(SIZE+1) bytes) that covers n bytes. */
static uint32_t nd_mpu_size_field(uint32_t n)
{
    uint32_t log2 = 5u; /* 32 bytes, the smallest region */
    while (log2 < 31u && (1u << log2) < n) {
        ++log2;
    }
    return log2 - 1u;
}

void nd_flexram_fit_mpu(void)
{
    uint32_t regions = (MPU->TYPE & MPU_TYPE_DREGION_Msk) >> MPU_TYPE_DREGION_Pos;
    uint32_t wanted = nd_mpu_size_field(ND_FLEXRAM_DTCM_BYTES);
    uint32_t r;

    for (r = 0u; r < regions; ++r) {
        uint32_t rasr;
        MPU->RNR = r;
        rasr = MPU->RASR;
        if ((rasr & MPU_RASR_ENABLE_Msk) == 0u || (MPU->RBAR & MPU_RBAR_ADDR_Msk) != ND_FLEXRAM_DTCM_ADDRESS ||
            ((rasr & MPU_RASR_SIZE_Msk) >> MPU_RASR_SIZE_Pos) >= wanted) {
            continue;
        }
        /* Only the size grows: the part already covered keeps its attributes, so the MPU can stay on. */
        MPU->RASR = (rasr & ~MPU_RASR_SIZE_Msk) | (wanted << MPU_RASR_SIZE_Pos);
    }
    __DSB();
    __ISB();
}

#else /* no [flexram] in the board file: the fuse split stays */

void nd_flexram_fit_mpu(void)
{
}

#endif /* ND_FLEXRAM_BANK_CFG */
