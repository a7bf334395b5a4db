//! A minimal PNG writer (stored deflate blocks) for the dev-echo provider's images: real,
//! decodable images without an image crate.

/// An RGB gradient tinted by `seed`.
pub fn gradient(width: u32, height: u32, seed: &[u8; 32]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(((width * 3 + 1) * height) as usize);
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            let r = (x * 255 / width.max(1)) as u8 ^ seed[0];
            let g = (y * 255 / height.max(1)) as u8 ^ seed[1];
            raw.extend_from_slice(&[r, g, seed[2]]);
        }
    }
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for byte in data {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_png_has_a_valid_signature_and_chunk_checksums() {
        let png = super::gradient(4, 3, &[7; 32]);
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        // IHDR: length 13, then its CRC over type+data.
        let ihdr = &png[12..12 + 4 + 13];
        let crc = u32::from_be_bytes(png[29..33].try_into().unwrap_or_default());
        assert_eq!(super::crc32(ihdr), crc);
        assert!(png.ends_with(&[0xae, 0x42, 0x60, 0x82]), "IEND's CRC is the well-known constant");
    }
}
