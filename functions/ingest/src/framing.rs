//! Strict HTTP/1.1 request framing, enforced on the byte stream before hyper reads it.
//!
//! hyper reads a request carrying both `Content-Length` and `Transfer-Encoding` by the latter and
//! drops the former before the application sees the request, so the application cannot refuse
//! it; and it accepts any byte but LF in a chunk extension. Both are how request smuggling works
//! when a proxy in front frames a request differently (RFC 9112 §6.3, §7.1.1). [`FramingGuard`]
//! follows the framing of every request on a connection (head, then a body by `Content-Length`
//! or chunks) and:
//! - renames a `Content-Length` that comes with `Transfer-Encoding` to [`AMBIGUOUS_FRAMING`] (the
//!   same length, so nothing shifts); the server answers such a request 400 and closes;
//! - ends the input at a control character in a chunk extension, so the body cannot be completed
//!   and the request is answered 400.
//!
//! It never decides framing for hyper: whenever the stream is something hyper refuses by itself
//! (a malformed head or chunk, an unsupported coding) or does not frame (an upgrade), the guard
//! stops following and passes the bytes through unchanged.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The header name a `Content-Length` accompanied by `Transfer-Encoding` is renamed to.
pub const AMBIGUOUS_FRAMING: &str = "x-ambiguous-cl";
const CONTENT_LENGTH: &[u8] = b"content-length";
const _SAME_LENGTH: () = assert!(AMBIGUOUS_FRAMING.len() == CONTENT_LENGTH.len());

/// A head longer than this is left to hyper, which refuses it (431).
const MAX_HEAD: usize = 64 << 10;
const MAX_HEADERS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Hex digits of the size (how many so far).
    Size {
        digits: u8,
    },
    /// Spaces or tabs after the size.
    SizeSpace,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a request head (or before one): bytes are held until the head is complete.
    Head { seen_line: bool, at_line_start: bool },
    /// Body bytes left by `Content-Length`.
    Fixed(u64),
    /// A chunked body; `left` is the current chunk's size (or what is left of its data).
    Chunked { at: Chunk, left: u64 },
    /// No longer followed: hyper refuses or does not frame what comes (see the module comment).
    Blind,
    /// The framing broke a rule hyper does not check: hyper is given the end of the input there,
    /// so the body cannot be completed (400) while the connection can still carry the answer.
    Refused,
}

const NEW_HEAD: State = State::Head { seen_line: false, at_line_start: true };

/// `io` whose inbound requests are checked as the module comment says.
pub struct FramingGuard<T> {
    io: T,
    state: State,
    /// The head being received: released to hyper once complete (and rewritten if need be).
    held: Vec<u8>,
    /// Bytes checked and ready for hyper.
    ready: Vec<u8>,
    /// Where `ready` starts (what hyper has taken).
    taken: usize,
}

impl<T> FramingGuard<T> {
    /// Follows `io`'s requests from the first.
    pub fn new(io: T) -> FramingGuard<T> {
        FramingGuard { io, state: NEW_HEAD, held: Vec::new(), ready: Vec::new(), taken: 0 }
    }

    /// Checks `input` (just read), moving it into `ready` or `held`.
    fn follow(&mut self, mut input: &[u8]) -> io::Result<()> {
        while !input.is_empty() {
            match self.state {
                State::Blind => {
                    self.ready.extend_from_slice(input);
                    return Ok(());
                }
                State::Refused => return Ok(()),
                State::Head { seen_line, at_line_start } => {
                    let byte = input[0];
                    input = &input[1..];
                    self.held.push(byte);
                    self.state = match byte {
                        b'\n' if at_line_start && seen_line => self.head_complete(),
                        b'\n' => State::Head { seen_line, at_line_start: true },
                        b'\r' => State::Head { seen_line, at_line_start },
                        _ => State::Head { seen_line: true, at_line_start: false },
                    };
                    if self.held.len() > MAX_HEAD && matches!(self.state, State::Head { .. }) {
                        self.release_head(State::Blind);
                    }
                }
                State::Fixed(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    self.ready.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = if left == n as u64 { NEW_HEAD } else { State::Fixed(left - n as u64) };
                }
                State::Chunked { at: Chunk::Data, left } => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    self.ready.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    let at = if left == n as u64 { Chunk::DataCr } else { Chunk::Data };
                    self.state = State::Chunked { at, left: left - n as u64 };
                }
                State::Chunked { at, left } => {
                    let byte = input[0];
                    input = &input[1..];
                    self.state = chunk_step(at, left, byte)?;
                    self.ready.push(byte);
                }
            }
        }
        Ok(())
    }

    /// The head in `held` is complete: checks it and returns the state its body starts in.
    fn head_complete(&mut self) -> State {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let base = self.held.as_ptr() as usize;
        let next = match request.parse(&self.held) {
            Ok(httparse::Status::Complete(_)) => {
                let upgrade = request.method == Some("CONNECT")
                    || request.headers.iter().any(|h| h.name.eq_ignore_ascii_case("upgrade"));
                let te: Vec<&[u8]> = request
                    .headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
                    .map(|h| h.value)
                    .collect();
                let lengths: Vec<(usize, &[u8])> = request
                    .headers
                    .iter()
                    .filter(|h| h.name.as_bytes().eq_ignore_ascii_case(CONTENT_LENGTH))
                    .map(|h| (h.name.as_ptr() as usize - base, h.value))
                    .collect();
                if upgrade || (request.version != Some(1) && !te.is_empty()) {
                    Err(())
                } else if !te.is_empty() {
                    // hyper reads chunks when the last coding is `chunked` and refuses the rest.
                    let chunked = te.last().is_some_and(|v| last_coding_is_chunked(v));
                    let ambiguous: Vec<usize> = lengths.iter().map(|(at, _)| *at).collect();
                    Ok((chunked.then_some(State::Chunked { at: Chunk::Size { digits: 0 }, left: 0 }), ambiguous))
                } else {
                    let values: Vec<Option<u64>> = lengths.iter().map(|(_, v)| parse_length(v)).collect();
                    match values.first() {
                        None => Ok((Some(NEW_HEAD), Vec::new())),
                        Some(Some(n)) if values.iter().all(|v| *v == Some(*n)) => {
                            Ok((Some(if *n == 0 { NEW_HEAD } else { State::Fixed(*n) }), Vec::new()))
                        }
                        _ => Err(()),
                    }
                }
            }
            // Incomplete cannot happen after the empty line; errors are hyper's to answer.
            _ => Err(()),
        };
        match next {
            Ok((Some(body), ambiguous)) => {
                for at in ambiguous {
                    self.held[at..at + CONTENT_LENGTH.len()].copy_from_slice(AMBIGUOUS_FRAMING.as_bytes());
                }
                self.release_head(body);
                body
            }
            Ok((None, _)) | Err(()) => {
                self.release_head(State::Blind);
                State::Blind
            }
        }
    }

    fn release_head(&mut self, next: State) {
        self.ready.append(&mut self.held);
        self.state = next;
    }
}

/// One byte of a chunked body's framing (all but chunk data), as hyper reads it.
fn chunk_step(at: Chunk, left: u64, byte: u8) -> io::Result<State> {
    let go = |at| Ok(State::Chunked { at, left });
    match (at, byte) {
        (Chunk::Size { digits }, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') if digits < 16 => {
            let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
            Ok(State::Chunked { at: Chunk::Size { digits: digits + 1 }, left: left * 16 + digit })
        }
        (Chunk::Size { digits }, b' ' | b'\t') if digits > 0 => go(Chunk::SizeSpace),
        (Chunk::SizeSpace, b' ' | b'\t') => go(Chunk::SizeSpace),
        (Chunk::Size { digits }, b';') if digits > 0 => go(Chunk::Extension),
        (Chunk::SizeSpace, b';') => go(Chunk::Extension),
        (Chunk::Size { digits }, b'\r') if digits > 0 => go(Chunk::SizeLf),
        (Chunk::SizeSpace | Chunk::Extension, b'\r') => go(Chunk::SizeLf),
        (Chunk::Extension, b'\t') => go(Chunk::Extension),
        (Chunk::Extension, 0..=0x1f | 0x7f) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a control character in a chunk extension (RFC 9112 §7.1.1)",
        )),
        (Chunk::Extension, _) => go(Chunk::Extension),
        (Chunk::SizeLf, b'\n') if left == 0 => go(Chunk::TrailerStart),
        (Chunk::SizeLf, b'\n') => go(Chunk::Data),
        (Chunk::DataCr, b'\r') => go(Chunk::DataLf),
        (Chunk::DataLf, b'\n') => Ok(State::Chunked { at: Chunk::Size { digits: 0 }, left: 0 }),
        (Chunk::TrailerStart, b'\r') => go(Chunk::EndLf),
        (Chunk::TrailerLine, b'\r') => go(Chunk::TrailerLf),
        (Chunk::TrailerStart | Chunk::TrailerLine, b'\n') => Ok(State::Blind),
        (Chunk::TrailerStart | Chunk::TrailerLine, _) => go(Chunk::TrailerLine),
        (Chunk::TrailerLf, b'\n') => go(Chunk::TrailerStart),
        (Chunk::EndLf, b'\n') => Ok(NEW_HEAD),
        // Anything else hyper refuses itself; stop following.
        _ => Ok(State::Blind),
    }
}

fn last_coding_is_chunked(value: &[u8]) -> bool {
    let value = String::from_utf8_lossy(value);
    value.rsplit(',').next().is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
}

fn parse_length(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl<T: AsyncRead + Unpin> AsyncRead for FramingGuard<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.taken < this.ready.len() {
                let n = (this.ready.len() - this.taken).min(buf.remaining());
                buf.put_slice(&this.ready[this.taken..this.taken + n]);
                this.taken += n;
                if this.taken == this.ready.len() {
                    this.ready.clear();
                    this.taken = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.state == State::Refused {
                return Poll::Ready(Ok(()));
            }
            let mut scratch = [0u8; 8192];
            let mut read = ReadBuf::new(&mut scratch);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // End of input: an incomplete head goes to hyper as it is, which refuses it.
                this.ready.append(&mut this.held);
                if this.taken == this.ready.len() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if let Err(e) = this.follow(read.filled()) {
                tracing::debug!(error = %e, "request framing refused");
                this.state = State::Refused;
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FramingGuard<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the guard passes on when `input` arrives in pieces cut at `cuts`.
    fn guarded(input: &[u8], cuts: &[usize]) -> io::Result<(Vec<u8>, State)> {
        let mut guard = FramingGuard::new(());
        let mut from = 0;
        for &cut in cuts.iter().chain([input.len()].iter()) {
            let cut = cut.clamp(from, input.len());
            guard.follow(&input[from..cut])?;
            from = cut;
        }
        guard.ready.append(&mut guard.held);
        Ok((guard.ready, guard.state))
    }

    fn chunked(body: &[u8], pieces: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in body.chunks(body.len().div_ceil(pieces.max(1)).max(1)) {
            out.extend_from_slice(format!("{:X};name=value\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\nx-trailer: 1\r\n\r\n");
        out
    }

    /// Three pipelined requests whose bodies look like requests and headers themselves.
    fn pipelined(body: &[u8], pieces: usize) -> Vec<u8> {
        let mut stream =
            format!("POST /v1/falco HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        stream.extend_from_slice(body);
        stream
            .extend_from_slice(b"\r\nPOST /v1/pubsub HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        stream.extend_from_slice(&chunked(body, pieces));
        stream.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        stream
    }

    proptest! {
        #[test]
        fn well_framed_requests_pass_unchanged_however_they_are_cut(
            body in proptest::collection::vec(prop_oneof![
                Just(b"content-length: 5\r\n\r\n".to_vec()),
                Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
                Just(b"0\r\n\r\nGET / HTTP/1.1\r\n\r\n".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..40),
            ], 0..8).prop_map(|parts| parts.concat()),
            pieces in 1usize..5,
            cuts in proptest::collection::vec(0usize..2000, 0..12),
        ) {
            let stream = pipelined(&body, pieces);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let (out, state) = guarded(&stream, &cuts).expect("well framed");
            prop_assert_eq!(out, stream);
            prop_assert_eq!(state, NEW_HEAD, "every request followed to its end");
        }
    }

    #[test]
    fn content_length_with_transfer_encoding_is_renamed_in_either_order_and_case() {
        for head in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 5\r\n\r\n",
        ] {
            let stream = format!("{head}0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n");
            let (out, state) = guarded(stream.as_bytes(), &[7, 30]).expect("framed");
            let out = String::from_utf8(out).expect("utf8");
            assert_eq!(out.len(), stream.len());
            assert!(
                out.contains("x-ambiguous-cl: 5\r\n") && !out.to_ascii_lowercase().contains("content-length"),
                "{out}"
            );
            assert!(out.ends_with("0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"), "{out}");
            assert_eq!(state, NEW_HEAD);
        }
        // Alone, neither header is touched.
        let (out, _) = guarded(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", &[]).expect("framed");
        assert_eq!(out, b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab");
    }

    #[test]
    fn a_control_character_in_a_chunk_extension_fails_the_read() {
        let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;a=\x01b\r\nab\r\n0\r\n\r\n";
        let error = guarded(stream, &[]).expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("chunk extension"), "{error}");
        // A tab is allowed (it is whitespace in an extension).
        guarded(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;a=\tb\r\nab\r\n0\r\n\r\n", &[]).expect("tab");
    }

    #[test]
    fn what_hyper_refuses_itself_is_passed_through_unfollowed() {
        for stream in [
            &b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nabc"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nxyz",
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nframes",
            b"NOT A REQUEST\r\n\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let (out, state) = guarded(stream, &[3]).expect("passed");
            assert_eq!(out, stream);
            assert_eq!(state, State::Blind, "{}", String::from_utf8_lossy(stream));
        }
        let huge = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let (out, state) = guarded(huge.as_bytes(), &[]).expect("passed");
        assert_eq!((out.as_slice(), state), (huge.as_bytes(), State::Blind));
    }
}
