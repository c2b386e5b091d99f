//! The Internet checksum (RFC 1071) and SCTP's CRC32c, for IPv4 header
//! verification and for the test builders.

/// One's-complement sum of `data` as big-endian 16-bit words (odd trailing
/// byte padded with zero), added to `init`. Fold with [`fold`].
#[inline]
pub fn sum(data: &[u8], init: u64) -> u64 {
    let mut acc = init;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        if let [a, b] = *w {
            acc += u64::from(u16::from_be_bytes([a, b]));
        }
    }
    if let [last] = *words.remainder() {
        acc += u64::from(last) << 8;
    }
    acc
}

/// Fold a [`sum`] to 16 bits (not complemented).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves acc <= 0xffff.
    acc as u16
}

/// The checksum field value for `data` (complement of the folded sum).
#[inline]
pub fn checksum(data: &[u8], init: u64) -> u16 {
    !fold(sum(data, init))
}

/// True if `data`, a header including its checksum field, sums to 0xffff.
#[inline]
pub fn verify(data: &[u8]) -> bool {
    fold(sum(data, 0)) == 0xffff
}

/// CRC32c (Castagnoli, reflected, as used by SCTP, RFC 9260 appendix A).
/// Bitwise and slow: used only by the test builders.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82f6_3b78 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d, 0)), 0xddf2);
        assert_eq!(checksum(&d, 0), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic example header (checksum b861).
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verify(&h));
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z, 0), 0xb861);
        z[10] = 0xb8;
        z[11] = 0x62;
        assert!(!verify(&z));
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56], 0)), 0x1234 + 0x5600);
    }

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C over "123456789".
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }
}
