//! Flash and RAM of a linked ELF image (32- or 64-bit, little-endian), from its section headers: flash holds
//! every allocated section with contents (code, read-only data, and the load image of initialised data),
//! RAM every allocated writable section (initialised data and `.bss`). The same split as the "text + data"
//! and "data + bss" of `size`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const SHF_WRITE: u64 = 0x1;
const SHF_ALLOC: u64 = 0x2;
const SHT_NOBITS: u32 = 8;

/// Bytes an image occupies in flash and in RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSize {
    pub flash_bytes: u64,
    pub ram_bytes: u64,
}

/// Reads the sizes of the ELF file at `path`.
pub fn image_size(path: &Path) -> Result<ImageSize> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes).map_err(|msg| Error::format(path, msg))
}

/// The sizes of an ELF image held in `b`; the error says what is malformed.
pub fn parse(b: &[u8]) -> std::result::Result<ImageSize, String> {
    if b.len() < 16 || &b[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    let wide = match b[4] {
        1 => false,
        2 => true,
        c => return Err(format!("unknown ELF class {c}")),
    };
    if b[5] != 1 {
        return Err("not a little-endian ELF file".into());
    }
    let u16_at = |o: usize| -> std::result::Result<u64, String> {
        b.get(o..o + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]) as u64)
            .ok_or_else(|| format!("truncated at byte {o}"))
    };
    let u32_at = |o: usize| -> std::result::Result<u64, String> {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as u64)
            .ok_or_else(|| format!("truncated at byte {o}"))
    };
    let u64_at = |o: usize| -> std::result::Result<u64, String> {
        b.get(o..o + 8)
            .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
            .ok_or_else(|| format!("truncated at byte {o}"))
    };
    let word = |o: usize| if wide { u64_at(o) } else { u32_at(o) };
    let (shoff, shentsize, shnum) = if wide {
        (u64_at(0x28)?, u16_at(0x3A)?, u16_at(0x3C)?)
    } else {
        (u32_at(0x20)?, u16_at(0x2E)?, u16_at(0x30)?)
    };
    let min_entry = if wide { 64 } else { 40 };
    if shnum > 0 && shentsize < min_entry {
        return Err(format!("section header entries of {shentsize} bytes"));
    }
    let mut size = ImageSize {
        flash_bytes: 0,
        ram_bytes: 0,
    };
    for i in 0..shnum {
        let at =
            usize::try_from(shoff + i * shentsize).map_err(|_| "section table out of range")?;
        let kind = u32_at(at + 4)? as u32;
        let (flags, sz) = if wide {
            (word(at + 8)?, word(at + 32)?)
        } else {
            (word(at + 8)?, word(at + 20)?)
        };
        if flags & SHF_ALLOC == 0 {
            continue;
        }
        if kind != SHT_NOBITS {
            size.flash_bytes += sz;
        }
        if flags & SHF_WRITE != 0 {
            size.ram_bytes += sz;
        }
    }
    Ok(size)
}
