//! The kubelet's plugin watcher dials the registration socket by its path without naming an
//! authority, so its gRPC client (grpc-go) sends the path as the request's `:authority`. HTTP/2
//! servers that check the header, h2 under tonic among them, refuse such a request
//! (PROTOCOL_ERROR): kubernetes/kubernetes#109081, fixed by #112597 for the kubelet's CSI calls
//! but not for plugin registration, whose `dial` still names no authority in v1.34.
//!
//! So the bytes a client sends to the node plugin's socket pass through [`AuthorityFix`]: in
//! every complete request header block, a literal `:authority` (the static table's entry 1, as
//! grpc-go encodes it) becomes `localhost`, what grpc-go sends for `unix://` targets and the
//! kubelet for CSI calls. The field keeps its representation, so an entry the client's encoder
//! adds to its dynamic table is added to the server's too, and later references to it (the
//! registration status call on the same connection) resolve to `localhost` on the server.
//! Everything else passes unchanged; a block it cannot parse too.

/// The client connection preface (RFC 9113, 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame header length.
const FRAME_HEADER: usize = 9;
/// HEADERS frame type and its flags.
const HEADERS: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// What `:authority` becomes.
const LOCALHOST: &[u8] = b"localhost";

/// The client-to-server byte stream of one connection, rewritten as it arrives.
#[derive(Debug, Default)]
pub struct AuthorityFix {
    /// Bytes received and not yet passed on (an incomplete preface or frame).
    pending: Vec<u8>,
    preface_seen: bool,
}

impl AuthorityFix {
    /// Takes the next bytes the client sent; returns what to pass to the server now.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::with_capacity(self.pending.len());
        let mut at = 0;
        if !self.preface_seen {
            if self.pending.len() < PREFACE.len() {
                return out;
            }
            out.extend_from_slice(&self.pending[..PREFACE.len()]);
            at = PREFACE.len();
            self.preface_seen = true;
        }
        while self.pending.len() - at >= FRAME_HEADER {
            let header = &self.pending[at..at + FRAME_HEADER];
            let length =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let end = at + FRAME_HEADER + length;
            if self.pending.len() < end {
                break;
            }
            let frame = &self.pending[at..end];
            match fixed_headers_frame(frame) {
                Some(rewritten) => out.extend_from_slice(&rewritten),
                None => out.extend_from_slice(frame),
            }
            at = end;
        }
        self.pending.drain(..at);
        out
    }
}

/// A HEADERS frame with its `:authority` rewritten, or `None` to pass the frame as it is (not
/// HEADERS, continued in CONTINUATION frames, unparseable, or without a literal authority).
fn fixed_headers_frame(frame: &[u8]) -> Option<Vec<u8>> {
    let (kind, flags) = (frame[3], frame[4]);
    if kind != HEADERS || flags & END_HEADERS == 0 {
        return None;
    }
    let payload = &frame[FRAME_HEADER..];
    let (mut start, mut end) = (0, payload.len());
    if flags & PADDED != 0 {
        let pad = usize::from(*payload.first()?);
        start = 1;
        end = end.checked_sub(pad)?;
    }
    let priority = if flags & PRIORITY != 0 {
        let p = payload.get(start..start + 5)?;
        start += 5;
        Some(p)
    } else {
        None
    };
    let block = fixed_block(payload.get(start..end)?)?;
    let length = priority.map_or(0, <[u8]>::len) + block.len();
    let mut out = Vec::with_capacity(FRAME_HEADER + length);
    let length = u32::try_from(length).ok()?.to_be_bytes();
    out.extend_from_slice(&length[1..]);
    // The padding goes (it carries nothing).
    out.extend_from_slice(&[kind, flags & !PADDED]);
    out.extend_from_slice(&frame[5..FRAME_HEADER]);
    out.extend_from_slice(priority.unwrap_or_default());
    out.extend_from_slice(&block);
    Some(out)
}

/// The header block with every literal `:authority` value replaced by `localhost`; `None` if
/// it has none or cannot be parsed (RFC 7541, 6).
pub fn fixed_block(block: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len());
    let mut at = 0;
    let mut changed = false;
    while at < block.len() {
        let first = block[at];
        let field_start = at;
        if first & 0x80 != 0 {
            // Indexed field.
            at = integer(block, at, 7)?.1;
        } else if first & 0xE0 == 0x20 {
            // Dynamic table size update.
            at = integer(block, at, 5)?.1;
        } else {
            // A literal: with incremental indexing (01), without (0000) or never (0001).
            let prefix = if first & 0xC0 == 0x40 { 6 } else { 4 };
            let (name_index, after_index) = integer(block, at, prefix)?;
            at = after_index;
            let authority = if name_index == 0 {
                let (name, after_name) = string(block, at)?;
                at = after_name;
                name == Some(&b":authority"[..])
            } else {
                name_index == 1
            };
            let after_value = string(block, at)?.1;
            if authority {
                // The representation's first bytes (index or name), then the new value.
                out.extend_from_slice(&block[field_start..at]);
                out.push(u8::try_from(LOCALHOST.len()).ok()?);
                out.extend_from_slice(LOCALHOST);
                changed = true;
                at = after_value;
                continue;
            }
            at = after_value;
        }
        out.extend_from_slice(&block[field_start..at]);
    }
    changed.then_some(out)
}

/// An HPACK integer with an `n`-bit prefix at `at`: its value and the index after it.
fn integer(block: &[u8], at: usize, n: u32) -> Option<(u64, usize)> {
    let max = (1u64 << n) - 1;
    let mut value = u64::from(*block.get(at)?) & max;
    let mut at = at + 1;
    if value < max {
        return Some((value, at));
    }
    let mut shift = 0u32;
    loop {
        let byte = *block.get(at)?;
        at += 1;
        value = value.checked_add(u64::from(byte & 0x7F).checked_shl(shift)?)?;
        if byte & 0x80 == 0 {
            return Some((value, at));
        }
        shift += 7;
        if shift > 56 {
            return None;
        }
    }
}

/// An HPACK string literal at `at`: its bytes when not Huffman-coded, and the index after it.
fn string(block: &[u8], at: usize) -> Option<(Option<&[u8]>, usize)> {
    let huffman = *block.get(at)? & 0x80 != 0;
    let (length, start) = integer(block, at, 7)?;
    let end = start.checked_add(usize::try_from(length).ok()?)?;
    let bytes = block.get(start..end)?;
    Some(((!huffman).then_some(bytes), end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A string literal, raw.
    fn raw(s: &str) -> Vec<u8> {
        let mut v = vec![u8::try_from(s.len()).unwrap()];
        v.extend_from_slice(s.as_bytes());
        v
    }

    /// A request block as grpc-go encodes one: :method POST, :scheme http (indexed), :path and
    /// :authority literals with incremental indexing (static names 4 and 1), then content-type
    /// never indexed with a literal name.
    fn request(authority: &[u8]) -> Vec<u8> {
        let mut b = vec![0x83, 0x86, 0x44];
        b.extend(raw("/pluginregistration.Registration/GetInfo"));
        b.push(0x41);
        b.extend(authority);
        b.push(0x10);
        b.extend(raw("content-type"));
        b.extend(raw("application/grpc"));
        b
    }

    #[test]
    fn a_literal_authority_becomes_localhost_and_the_rest_is_kept() {
        let path = raw("/var/lib/kubelet/plugins_registry/x-reg.sock");
        assert_eq!(
            fixed_block(&request(&path)).unwrap(),
            request(&raw("localhost"))
        );
        // Huffman-coded (its bytes are not read), and never indexed (0001 prefix).
        let huffman = [0x85, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE];
        assert_eq!(
            fixed_block(&request(&huffman)).unwrap(),
            request(&raw("localhost"))
        );
        let mut never = vec![0x11];
        never.extend(raw("/x.sock"));
        let mut want = vec![0x11];
        want.extend(raw("localhost"));
        assert_eq!(fixed_block(&never).unwrap(), want);
        // With a literal name.
        let mut named = vec![0x40];
        named.extend(raw(":authority"));
        named.extend(raw("/x.sock"));
        let mut want = vec![0x40];
        want.extend(raw(":authority"));
        want.extend(raw("localhost"));
        assert_eq!(fixed_block(&named).unwrap(), want);
    }

    #[test]
    fn blocks_without_a_literal_authority_or_unparseable_pass_unchanged() {
        // The second request of a connection refers to the dynamic table's entry.
        assert_eq!(fixed_block(&[0x83, 0x86, 0xBF, 0xBE]), None);
        // A string longer than the block; an integer that never ends.
        assert_eq!(fixed_block(&[0x41, 0x20, b'a']), None);
        assert_eq!(fixed_block(&[0x7F, 0xFF, 0xFF]), None);
        assert_eq!(fixed_block(&[]), None);
    }

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut f = len[1..].to_vec();
        f.extend([kind, flags, 0, 0, 0, 1]);
        f.extend(payload);
        f
    }

    #[test]
    fn the_stream_is_rewritten_frame_by_frame_however_it_is_split() {
        let settings = frame(0x4, 0, &[0, 3, 0, 0, 0, 100]);
        let bad = request(&raw("/var/lib/kubelet/plugins_registry/x-reg.sock"));
        let mut padded = vec![3];
        padded.extend([0x80, 0, 0, 0, 16]); // priority: exclusive, stream 0, weight 16
        padded.extend(&bad);
        padded.extend([0, 0, 0]);
        let headers = frame(HEADERS, END_HEADERS | PADDED | PRIORITY, &padded);
        let data = frame(0x0, 0x1, b"\0\0\0\0\0");
        let mut sent = PREFACE.to_vec();
        sent.extend(&settings);
        sent.extend(&headers);
        sent.extend(&data);

        let mut fixed_payload = vec![0x80, 0, 0, 0, 16];
        fixed_payload.extend(request(&raw("localhost")));
        let mut want = PREFACE.to_vec();
        want.extend(&settings);
        want.extend(frame(HEADERS, END_HEADERS | PRIORITY, &fixed_payload));
        want.extend(&data);

        for chunk in [1, 7, 10, 64, sent.len()] {
            let mut fix = AuthorityFix::default();
            let got: Vec<u8> = sent.chunks(chunk).flat_map(|c| fix.push(c)).collect();
            assert_eq!(got, want, "in chunks of {chunk}");
        }
        // A header block continued in CONTINUATION frames passes as it is.
        let continued = frame(HEADERS, 0, &bad);
        let mut fix = AuthorityFix::default();
        let mut sent = PREFACE.to_vec();
        sent.extend(&continued);
        assert_eq!(fix.push(&sent), sent);
    }
}
