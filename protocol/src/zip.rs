//! A streaming ZIP writer's records, no I/O: what `/job/J/N/artifact/*zip*/archive.zip`
//! sends, files stored (not compressed: artifacts are mostly compressed already, and a
//! download runs at disk speed), each written as it is read, with ZIP64 records where a
//! size or an offset passes 4 GiB.
//!
//! For each file: [`local_header`], the bytes (fed to a [`Crc32`]), [`data_descriptor`];
//! after the last, [`central_directory`]. Sizes and CRCs follow the data (flag bit 3), so
//! nothing is read twice. Names are UTF-8 (flag bit 11).

/// The CRC-32 (IEEE 802.3) of ZIP, computed a chunk at a time.
#[derive(Debug, Clone)]
pub struct Crc32 {
    value: u32,
}

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

impl Default for Crc32 {
    fn default() -> Self {
        Crc32::new()
    }
}

impl Crc32 {
    pub fn new() -> Crc32 {
        Crc32 { value: 0xFFFF_FFFF }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = self.value;
        for &b in bytes {
            c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
        }
        self.value = c;
    }

    pub fn finish(&self) -> u32 {
        self.value ^ 0xFFFF_FFFF
    }
}

/// One file written, as the central directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub crc: u32,
    pub size: u64,
    /// Where its local header starts.
    pub offset: u64,
    /// Whether its records are ZIP64 (decided before its data, from the size expected).
    pub zip64: bool,
}

const LIMIT32: u64 = 0xFFFF_FFFF;
/// Stored, data descriptor, UTF-8 names.
const FLAGS: u16 = (1 << 3) | (1 << 11);
/// 1980-01-01 00:00, the earliest DOS date: no file time is claimed.
const DOS_DATE: u16 = (1 << 5) | 1;

fn version(zip64: bool) -> u16 {
    if zip64 { 45 } else { 20 }
}

/// Whether a file of `size` bytes starting at `offset` needs ZIP64 records.
pub fn needs_zip64(size: u64, offset: u64) -> bool {
    size >= LIMIT32 || offset >= LIMIT32
}

/// The local header of file `name` (sizes and CRC follow in its data descriptor).
pub fn local_header(name: &str, zip64: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(30 + name.len() + 20);
    out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    out.extend_from_slice(&version(zip64).to_le_bytes());
    out.extend_from_slice(&FLAGS.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // stored
    out.extend_from_slice(&0u16.to_le_bytes()); // time
    out.extend_from_slice(&DOS_DATE.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // crc: in the descriptor
    let unknown = if zip64 { u32::MAX } else { 0 };
    out.extend_from_slice(&unknown.to_le_bytes());
    out.extend_from_slice(&unknown.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    let extra: u16 = if zip64 { 20 } else { 0 };
    out.extend_from_slice(&extra.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    if zip64 {
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
    }
    out
}

/// The data descriptor after a file's bytes.
pub fn data_descriptor(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
    out.extend_from_slice(&entry.crc.to_le_bytes());
    if entry.zip64 {
        out.extend_from_slice(&entry.size.to_le_bytes());
        out.extend_from_slice(&entry.size.to_le_bytes());
    } else {
        out.extend_from_slice(&(entry.size as u32).to_le_bytes());
        out.extend_from_slice(&(entry.size as u32).to_le_bytes());
    }
    out
}

/// The central directory of `entries`, which starts at `offset`, and the end records.
pub fn central_directory(entries: &[Entry], offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let big_size = entry.size >= LIMIT32;
        let big_offset = entry.offset >= LIMIT32;
        let mut extra = Vec::new();
        if big_size {
            extra.extend_from_slice(&entry.size.to_le_bytes());
            extra.extend_from_slice(&entry.size.to_le_bytes());
        }
        if big_offset {
            extra.extend_from_slice(&entry.offset.to_le_bytes());
        }
        let zip64 = entry.zip64 || !extra.is_empty();
        out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        // Made by: Unix (3), spec 4.5.
        out.extend_from_slice(&((3u16 << 8) | 45).to_le_bytes());
        out.extend_from_slice(&version(zip64).to_le_bytes());
        out.extend_from_slice(&FLAGS.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&DOS_DATE.to_le_bytes());
        out.extend_from_slice(&entry.crc.to_le_bytes());
        let size32 = if big_size {
            u32::MAX
        } else {
            entry.size as u32
        };
        out.extend_from_slice(&size32.to_le_bytes());
        out.extend_from_slice(&size32.to_le_bytes());
        out.extend_from_slice(&(entry.name.len() as u16).to_le_bytes());
        let extra_len = if extra.is_empty() { 0 } else { extra.len() + 4 };
        out.extend_from_slice(&(extra_len as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // comment
        out.extend_from_slice(&0u16.to_le_bytes()); // disk
        out.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        out.extend_from_slice(&(0o100_644u32 << 16).to_le_bytes());
        let offset32 = if big_offset {
            u32::MAX
        } else {
            entry.offset as u32
        };
        out.extend_from_slice(&offset32.to_le_bytes());
        out.extend_from_slice(entry.name.as_bytes());
        if !extra.is_empty() {
            out.extend_from_slice(&1u16.to_le_bytes());
            out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            out.extend_from_slice(&extra);
        }
    }
    let size = out.len() as u64;
    let count = entries.len() as u64;
    let zip64_end = count >= 0xFFFF || size >= LIMIT32 || offset >= LIMIT32;
    if zip64_end {
        let record_at = offset + size;
        out.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&((3u16 << 8) | 45).to_le_bytes());
        out.extend_from_slice(&45u16.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&record_at.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    let count16 = if zip64_end { u16::MAX } else { count as u16 };
    out.extend_from_slice(&count16.to_le_bytes());
    out.extend_from_slice(&count16.to_le_bytes());
    let size32 = if zip64_end { u32::MAX } else { size as u32 };
    let offset32 = if zip64_end { u32::MAX } else { offset as u32 };
    out.extend_from_slice(&size32.to_le_bytes());
    out.extend_from_slice(&offset32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_the_ieee_one() {
        let mut crc = Crc32::new();
        crc.update(b"12345");
        crc.update(b"6789");
        assert_eq!(crc.finish(), 0xCBF4_3926);
        assert_eq!(Crc32::new().finish(), 0);
    }

    #[test]
    fn an_archive_is_laid_out_in_order() {
        let mut zip = Vec::new();
        let mut entries = Vec::new();
        for (name, data) in [("a.txt", &b"hello"[..]), ("dir/b.bin", &[0u8, 1, 2][..])] {
            let offset = zip.len() as u64;
            zip.extend(local_header(name, false));
            zip.extend_from_slice(data);
            let mut crc = Crc32::new();
            crc.update(data);
            let entry = Entry {
                name: name.into(),
                crc: crc.finish(),
                size: data.len() as u64,
                offset,
                zip64: false,
            };
            zip.extend(data_descriptor(&entry));
            entries.push(entry);
        }
        let directory_at = zip.len() as u64;
        zip.extend(central_directory(&entries, directory_at));
        // The end record names two entries and where the directory is.
        let end = &zip[zip.len() - 22..];
        assert_eq!(&end[..4], &0x0605_4b50u32.to_le_bytes());
        assert_eq!(u16::from_le_bytes([end[10], end[11]]), 2);
        assert_eq!(
            u32::from_le_bytes([end[16], end[17], end[18], end[19]]) as u64,
            directory_at
        );
        assert!(needs_zip64(5 << 30, 0) && !needs_zip64(1 << 30, 1 << 20));
    }
}
