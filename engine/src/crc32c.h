/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every CommitLog record.
 * Uses the SSE4.2 instruction when the CPU has it, else a table. Thread-safe, no state.
 */
#ifndef LITEGATE_CRC32C_H
#define LITEGATE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/** @brief Extend @p crc (0 to start) over @p len bytes of @p data. */
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t len);

#endif
