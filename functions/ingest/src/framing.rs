//! Strict HTTP/1.1 request framing, enforced on the byte stream before hyper reads it.
//!
//! hyper reads a request carrying both `Content-Length` and `Transfer-Encoding` by the latter and
//! drops the former before the application sees the request, so the application cannot refuse
//! it; and it accepts any byte but LF in a chunk extension. Both are how request smuggling works
//! when a proxy in front frames a request differently (RFC 9112 §6.3, §7.1.1). [`FramingGuard`]
//! follows the framing of every request on a connection (head, then a body by `Content-Length`
//! or chunks) and:
//! - refuses a head hyper would misread or refuse without a word: `Content-Length` together with
//!   `Transfer-Encoding`, an invalid `Content-Length`, a coding other than chunked, a malformed
//!   head (400), one over 64 KiB or 100 fields (431). hyper is given, in its place, a request
//!   carrying the reason in [`REFUSED`], which the server answers in the JSON error shape every
//!   other 4xx has, then the end of the input: nothing that follows is read;
//! - ends the input at a control character in a chunk extension, so the body cannot be completed
//!   and the request is answered 400.
//!
//! It never decides framing for hyper: a well-framed request passes byte for byte; an upgrade,
//! or a malformed chunk (which hyper refuses itself), stops the following and passes through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The header of the request the guard gives hyper in place of a refused head: `STATUS reason`.
/// (A client sending it itself only gets its own request refused.)
pub const REFUSED: &str = "x-riposte-refused";

/// A longer head is refused (431).
const MAX_HEAD: usize = 64 << 10;
/// As many header fields as hyper takes by default.
const MAX_HEADERS: usize = 100;

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
    /// A head or a chunk was refused: hyper is given the end of the input from there, so nothing
    /// after it is read, while the connection still carries the answer.
    Refused,
}

const NEW_HEAD: State = State::Head { seen_line: false, at_line_start: true };

/// `io` whose inbound requests are checked as the module comment says.
pub struct FramingGuard<T> {
    io: T,
    state: State,
    /// The head being received: released to hyper once complete and checked.
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
                        let refusal =
                            Refusal { status: 431, reason: format!("the request head exceeds {} KiB", MAX_HEAD >> 10) };
                        self.refuse(&refusal);
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
        match check_head(&self.held) {
            Ok(body) => {
                self.release_head(body);
                body
            }
            Err(refusal) => self.refuse(&refusal),
        }
    }

    /// Gives hyper, instead of the head, a request carrying `refusal` (answered by the server in
    /// the JSON error shape, in order after the requests before it), then the end of the input:
    /// nothing after a head that cannot be trusted reaches hyper.
    fn refuse(&mut self, refusal: &Refusal) -> State {
        self.held.clear();
        let head = format!(
            "GET / HTTP/1.1\r\nhost: riposte\r\n{REFUSED}: {} {}\r\nconnection: close\r\n\r\n",
            refusal.status, refusal.reason
        );
        self.ready.extend_from_slice(head.as_bytes());
        self.state = State::Refused;
        State::Refused
    }

    fn release_head(&mut self, next: State) {
        self.ready.append(&mut self.held);
        self.state = next;
    }
}

/// Why a request head is refused: the status and a reason in plain ASCII.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    status: u16,
    reason: String,
}

fn bad_request(reason: impl Into<String>) -> Refusal {
    Refusal { status: 400, reason: reason.into() }
}

/// Checks a complete head: the state its body starts in, [`State::Blind`] for what the guard does
/// not follow (an upgrade), or why it is refused.
fn check_head(head: &[u8]) -> Result<State, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad_request("the request head is incomplete")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal { status: 431, reason: format!("more than {MAX_HEADERS} header fields") });
        }
        Err(e) => return Err(bad_request(format!("the request head is malformed: {e}"))),
    }
    if request.method == Some("CONNECT") || request.headers.iter().any(|h| h.name.eq_ignore_ascii_case("upgrade")) {
        return Ok(State::Blind);
    }
    let named = |name: &'static str| request.headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name));
    let te: Vec<&[u8]> = named("transfer-encoding").map(|h| h.value).collect();
    let lengths: Vec<Option<u64>> = named("content-length").map(|h| parse_length(h.value)).collect();
    if !te.is_empty() {
        if !lengths.is_empty() {
            return Err(bad_request(
                "Content-Length together with Transfer-Encoding is refused (RFC 9112 section 6.3: request smuggling)",
            ));
        }
        if request.version != Some(1) {
            return Err(bad_request("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if !te.last().is_some_and(|v| last_coding_is_chunked(v)) {
            return Err(bad_request("Transfer-Encoding must end with chunked"));
        }
        return Ok(State::Chunked { at: Chunk::Size { digits: 0 }, left: 0 });
    }
    match lengths.first() {
        None | Some(Some(0)) if lengths.iter().all(|l| *l == Some(0)) => Ok(NEW_HEAD),
        Some(Some(n)) if lengths.iter().all(|l| *l == Some(*n)) => Ok(State::Fixed(*n)),
        Some(Some(_)) if lengths.iter().all(Option::is_some) => Err(bad_request("Content-Length values disagree")),
        _ => Err(bad_request("Content-Length is not a number")),
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

    /// The request the guard passes on in place of a refused head.
    fn refusal(status: u16, reason: &str) -> String {
        format!("GET / HTTP/1.1\r\nhost: riposte\r\n{REFUSED}: {status} {reason}\r\nconnection: close\r\n\r\n")
    }

    #[test]
    fn heads_hyper_would_misread_or_refuse_silently_become_a_refusal_and_nothing_after_passes() {
        let smuggling =
            "Content-Length together with Transfer-Encoding is refused (RFC 9112 section 6.3: request smuggling)";
        for (head, reason) in [
            ("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", smuggling),
            ("POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 5\r\n\r\n", smuggling),
            ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "Content-Length values disagree"),
            ("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", "Content-Length is not a number"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding must end with chunked"),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 request"),
            ("POST / HTTP/1.1\r\nbad header: x\r\n\r\n", "the request head is malformed: invalid header name"),
        ] {
            // A well-framed request first: it passes, then the refusal in order, then nothing.
            let first = "GET /first HTTP/1.1\r\nhost: a\r\n\r\n";
            let stream = format!("{first}{head}0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n");
            let (out, state) = guarded(stream.as_bytes(), &[7, 30, 61]).expect("followed");
            assert_eq!(String::from_utf8(out).expect("utf8"), format!("{first}{}", refusal(400, reason)), "{head:?}");
            assert_eq!(state, State::Refused);
        }
        // Alone, neither header is touched.
        let (out, _) = guarded(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", &[]).expect("framed");
        assert_eq!(out, b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab");
    }

    #[test]
    fn heads_too_large_are_refused_with_431() {
        let huge = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\nGET /next HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        let (out, state) = guarded(huge.as_bytes(), &[100]).expect("followed");
        assert_eq!(
            (String::from_utf8(out).expect("utf8"), state),
            (refusal(431, "the request head exceeds 64 KiB"), State::Refused)
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: 1\r\n")).collect();
        let (out, _) = guarded(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes(), &[]).expect("followed");
        assert_eq!(String::from_utf8(out).expect("utf8"), refusal(431, "more than 100 header fields"));
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
    fn an_upgrade_is_passed_through_unfollowed() {
        let stream = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nframes, not requests";
        let (out, state) = guarded(stream, &[3]).expect("passed");
        assert_eq!((out.as_slice(), state), (&stream[..], State::Blind));
    }
}
