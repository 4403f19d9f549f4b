//! BER-TLV as PIV uses it (SP 800-73-4 part 2 §3.3): one- to three-byte tags, lengths in the
//! short form or 0x81/0x82/0x83 long forms. Pure: no IO.

use crate::error::PivError;

/// Appends the BER length of `len` to `out` (short form below 0x80, else 0x81/0x82/0x83 + bytes).
pub fn write_len(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        0x100..=0xFFFF => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
        _ => out.extend_from_slice(&[0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]),
    }
}

/// Appends one TLV: `tag` is written big-endian without leading zero bytes.
pub fn write(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    let tag_bytes = tag.to_be_bytes();
    let first = tag_bytes.iter().position(|&b| b != 0).unwrap_or(3);
    out.extend_from_slice(&tag_bytes[first..]);
    write_len(out, value.len());
    out.extend_from_slice(value);
}

/// One TLV encoded into a new buffer.
pub fn encode(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    write(&mut out, tag, value);
    out
}

/// One parsed TLV borrowing its value from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u32,
    pub value: &'a [u8],
}

/// Reads one TLV from the front of `input`; returns it and the rest.
pub fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), PivError> {
    let truncated = || PivError::Malformed("TLV 数据不完整");
    let mut pos = 0;
    let first = *input.first().ok_or_else(truncated)?;
    let mut tag = u32::from(first);
    pos += 1;
    if first & 0x1F == 0x1F {
        // Multi-byte tag: subsequent bytes while bit 8 is set.
        loop {
            let b = *input.get(pos).ok_or_else(truncated)?;
            pos += 1;
            if pos > 3 {
                return Err(PivError::Malformed("TLV 标签过长"));
            }
            tag = (tag << 8) | u32::from(b);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let len_byte = *input.get(pos).ok_or_else(truncated)?;
    pos += 1;
    let len = match len_byte {
        0..=0x7F => usize::from(len_byte),
        0x81..=0x83 => {
            let n = usize::from(len_byte & 0x7F);
            let bytes = input.get(pos..pos + n).ok_or_else(truncated)?;
            pos += n;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        }
        _ => return Err(PivError::Malformed("TLV 长度格式不支持")),
    };
    let value = input.get(pos..pos + len).ok_or_else(truncated)?;
    Ok((Tlv { tag, value }, &input[pos + len..]))
}

/// Every TLV at this level, in order.
pub fn parse_all(mut input: &[u8]) -> Result<Vec<Tlv<'_>>, PivError> {
    let mut items = Vec::new();
    while !input.is_empty() {
        let (tlv, rest) = read(input)?;
        items.push(tlv);
        input = rest;
    }
    Ok(items)
}

/// The value of the first TLV with `tag` at this level, if any.
pub fn find(input: &[u8], tag: u32) -> Result<Option<&[u8]>, PivError> {
    Ok(parse_all(input)?
        .into_iter()
        .find(|t| t.tag == tag)
        .map(|t| t.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        for (len, expected) in [
            (0usize, vec![0x00]),
            (0x7F, vec![0x7F]),
            (0x80, vec![0x81, 0x80]),
            (0xFF, vec![0x81, 0xFF]),
            (0x100, vec![0x82, 0x01, 0x00]),
            (0x1234, vec![0x82, 0x12, 0x34]),
            (0x10000, vec![0x83, 0x01, 0x00, 0x00]),
        ] {
            let mut out = Vec::new();
            write_len(&mut out, len);
            assert_eq!(out, expected, "length {len:#x}");
        }
    }

    #[test]
    fn multi_byte_tags_round_trip() {
        let encoded = encode(0x5FC105, &[1, 2, 3]);
        assert_eq!(encoded, [0x5F, 0xC1, 0x05, 0x03, 1, 2, 3]);
        let (tlv, rest) = read(&encoded).unwrap();
        assert_eq!(tlv.tag, 0x5FC105);
        assert_eq!(tlv.value, [1, 2, 3]);
        assert!(rest.is_empty());

        let encoded = encode(0x7F49, &[0x86, 0x00]);
        assert_eq!(encoded, [0x7F, 0x49, 0x02, 0x86, 0x00]);
        assert_eq!(read(&encoded).unwrap().0.tag, 0x7F49);
    }

    #[test]
    fn long_values_round_trip() {
        let value = vec![0xAB; 300];
        let encoded = encode(0x53, &value);
        assert_eq!(&encoded[..4], [0x53, 0x82, 0x01, 0x2C]);
        let (tlv, _) = read(&encoded).unwrap();
        assert_eq!(tlv.value.len(), 300);
    }

    #[test]
    fn truncated_input_is_refused() {
        assert!(read(&[0x53, 0x82, 0x01]).is_err());
        assert!(read(&[0x53, 0x05, 1, 2]).is_err());
        assert!(read(&[0x5F]).is_err());
        assert!(read(&[0x53, 0x80]).is_err());
    }

    #[test]
    fn find_returns_the_first_match() {
        let mut data = encode(0x70, &[9, 9]);
        data.extend(encode(0x71, &[0]));
        data.extend(encode(0xFE, &[]));
        assert_eq!(find(&data, 0x71).unwrap(), Some(&[0u8][..]));
        assert_eq!(find(&data, 0xFE).unwrap(), Some(&[][..]));
        assert_eq!(find(&data, 0x72).unwrap(), None);
    }
}
