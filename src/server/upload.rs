//! What a message may bring from the phone, checked before anything is stored or run: the limits, an image's
//! type by its first bytes (not by what the client says) and its pixel size by its header, a file's name, and a
//! `multipart/form-data` body taken apart (small enough to do here: the whole body is in memory, under its cap).

use hyper::StatusCode;

/// The most a message with attachments may send, all told (the other routes keep [`super::respond::MAX_BODY`]).
pub const MAX_UPLOAD_BODY: usize = 25 * 1024 * 1024;
/// The API takes an image of at most 5 MiB in base64, which is this many bytes of image.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024 / 4 * 3;
/// The longest side of an image the API takes, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 8000;
/// Images per message.
pub const MAX_IMAGES: usize = 10;
/// The largest other file.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
/// Other files per message.
pub const MAX_FILES: usize = 10;
/// A name longer than this (in characters) is shortened, its extension kept.
const MAX_NAME_CHARS: usize = 100;

/// The image types Claude reads.
pub const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// An attachment as the client sent it.
#[derive(Debug)]
pub struct Sent {
    pub name: String,
    pub media_type: String,
    pub data: Vec<u8>,
}

/// An attachment that passed the checks.
#[derive(Debug)]
pub struct Checked {
    /// The name, shortened if it was long.
    pub name: String,
    pub media_type: String,
    pub data: Vec<u8>,
    /// One of [`IMAGE_TYPES`], its bytes agreeing; else a file for the project.
    pub image: bool,
}

/// A refusal: the status and what `{"error"}` says.
pub type Refusal = (StatusCode, String);

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    (status, message.into())
}

/// Checks every attachment of a message; the first problem refuses them all.
pub fn check(sent: Vec<Sent>) -> Result<Vec<Checked>, Refusal> {
    let images = sent
        .iter()
        .filter(|s| s.media_type.starts_with("image/"))
        .count();
    if images > MAX_IMAGES {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_IMAGES} images per message ({images} sent)"),
        ));
    }
    if sent.len() - images > MAX_FILES {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_FILES} files besides images per message"),
        ));
    }
    sent.into_iter().map(check_one).collect()
}

fn check_one(s: Sent) -> Result<Checked, Refusal> {
    let name = check_name(&s.name).map_err(|e| refuse(StatusCode::BAD_REQUEST, e))?;
    let media_type = if s.media_type.is_empty() {
        "application/octet-stream".to_string()
    } else {
        s.media_type.to_ascii_lowercase()
    };
    if !is_media_type(&media_type) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("{name}: media_type {:?} is not a media type", s.media_type),
        ));
    }
    let image = media_type.starts_with("image/");
    if image && !IMAGE_TYPES.contains(&media_type.as_str()) {
        return Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{name}: images must be JPEG, PNG, GIF or WebP, not {media_type}"),
        ));
    }
    let limit = if image {
        MAX_IMAGE_BYTES
    } else {
        MAX_FILE_BYTES
    };
    if s.data.len() > limit {
        let what = if image { "an image" } else { "a file" };
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{name}: {} bytes; {what} may have at most {limit} bytes",
                s.data.len()
            ),
        ));
    }
    if image {
        if sniff(&s.data) != Some(media_type.as_str()) {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("{name}: the bytes are not a {media_type} image"),
            ));
        }
        match dimensions(&s.data) {
            None => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("{name}: the image's size could not be read from its header"),
                ));
            }
            Some((w, h)) if w.max(h) > MAX_IMAGE_SIDE || w == 0 || h == 0 => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{name}: {w}x{h} pixels; an image's longest side may be at most {MAX_IMAGE_SIDE}"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(Checked {
        name,
        media_type,
        data: s.data,
        image,
    })
}

/// `type/subtype`, each a token (RFC 9110), parameters not allowed.
fn is_media_type(t: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-".contains(&b))
    };
    t.len() <= 100 && t.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
}

/// A name is a file name: not a path, no control characters, not hidden; a long one is shortened (its
/// extension kept). The error says what is wrong.
pub fn check_name(name: &str) -> Result<String, String> {
    if name.trim().is_empty() {
        return Err("an attachment needs a name".into());
    }
    if name.contains(['/', '\\']) {
        return Err(format!("{name:?}: a name must be a file name, not a path"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{name:?}: a name may not hold control characters"));
    }
    if name.starts_with('.') {
        return Err(format!("{name:?}: a name may not start with a dot"));
    }
    if name.chars().count() <= MAX_NAME_CHARS {
        return Ok(name.to_string());
    }
    let (stem, ext) = split_ext(name);
    let ext: String = ext.chars().take(16).collect();
    let stem: String = stem
        .chars()
        .take(MAX_NAME_CHARS - ext.chars().count())
        .collect();
    Ok(format!("{}{ext}", stem.trim_end()))
}

/// `("report", ".pdf")`; no extension: `(name, "")`.
pub fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    }
}

/// The image type the bytes begin with, if one Claude reads.
pub fn sniff(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

fn be16(d: &[u8], at: usize) -> Option<u32> {
    Some(u16::from_be_bytes(d.get(at..at + 2)?.try_into().ok()?) as u32)
}

fn le16(d: &[u8], at: usize) -> Option<u32> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?) as u32)
}

fn le24(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at + 3)?;
    Some(b[0] as u32 | (b[1] as u32) << 8 | (b[2] as u32) << 16)
}

/// An image's width and height in pixels, from its header.
pub fn dimensions(d: &[u8]) -> Option<(u32, u32)> {
    match sniff(d)? {
        "image/png" if d.get(12..16) == Some(b"IHDR") => Some((
            u32::from_be_bytes(d.get(16..20)?.try_into().ok()?),
            u32::from_be_bytes(d.get(20..24)?.try_into().ok()?),
        )),
        "image/gif" => Some((le16(d, 6)?, le16(d, 8)?)),
        "image/webp" => match d.get(12..16)? {
            b"VP8 " => Some((le16(d, 26)? & 0x3FFF, le16(d, 28)? & 0x3FFF)),
            b"VP8L" => {
                let b = u32::from_le_bytes(d.get(21..25)?.try_into().ok()?);
                Some(((b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1))
            }
            b"VP8X" => Some((le24(d, 24)? + 1, le24(d, 27)? + 1)),
            _ => None,
        },
        "image/jpeg" => {
            // The segments up to the first start-of-frame, which holds the size.
            let mut i = 2;
            loop {
                if *d.get(i)? != 0xFF {
                    return None;
                }
                let marker = *d.get(i + 1)?;
                match marker {
                    0xFF => i += 1,
                    0x01 | 0xD0..=0xD8 => i += 2,
                    0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                        return Some((be16(d, i + 7)?, be16(d, i + 5)?));
                    }
                    _ => i += 2 + be16(d, i + 2)? as usize,
                }
            }
        }
        _ => None,
    }
}

/// A `multipart/form-data` body: its text fields and its file parts, in order.
#[derive(Debug, Default)]
pub struct Form {
    pub fields: Vec<(String, String)>,
    pub files: Vec<Sent>,
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    param(params, "boundary").filter(|b| (1..=70).contains(&b.len()))
}

/// Takes a `multipart/form-data` body apart (RFC 7578): a part with a `filename` is a file, the rest are text
/// fields. The error says what is wrong with the body.
pub fn parse_form(body: &[u8], boundary: &str) -> Result<Form, String> {
    let bad = |what: &str| format!("malformed multipart body: {what}");
    let delimiter = format!("--{boundary}");
    let next = format!("\r\n--{boundary}");
    let start = find(body, delimiter.as_bytes()).ok_or_else(|| bad("no boundary"))?;
    let mut rest = &body[start + delimiter.len()..];
    let mut form = Form::default();
    loop {
        if rest.starts_with(b"--") {
            return Ok(form);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or_else(|| bad("a boundary is not followed by a line end"))?;
        let head_end = find(rest, b"\r\n\r\n").ok_or_else(|| bad("a part has no header end"))?;
        let head =
            std::str::from_utf8(&rest[..head_end]).map_err(|_| bad("a header is not UTF-8"))?;
        let content = &rest[head_end + 4..];
        let end = find(content, next.as_bytes()).ok_or_else(|| bad("a part does not end"))?;
        let data = &content[..end];
        rest = &content[end + next.len()..];
        let (mut disposition, mut content_type) = (None, None);
        for line in head.split("\r\n") {
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| bad("a header line has no colon"))?;
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                disposition = Some(v.trim());
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(v.trim());
            }
        }
        let disposition = disposition.ok_or_else(|| bad("a part has no Content-Disposition"))?;
        let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
        if !kind.trim().eq_ignore_ascii_case("form-data") {
            return Err(bad("a part is not form-data"));
        }
        let name = param(params, "name").ok_or_else(|| bad("a part has no name"))?;
        match param(params, "filename") {
            // A form's file input with nothing chosen sends an empty part without a name.
            Some(filename) if filename.is_empty() && data.is_empty() => {}
            Some(filename) => form.files.push(Sent {
                name: filename,
                media_type: content_type
                    .map(|t| t.split(';').next().unwrap_or("").trim().to_string())
                    .unwrap_or_default(),
                data: data.to_vec(),
            }),
            None => {
                let value = String::from_utf8(data.to_vec())
                    .map_err(|_| format!("the field {name:?} is not UTF-8 text"))?;
                form.fields.push((name, value));
            }
        }
    }
}

/// The value of `name` in `; a=b; c="d"` (quoted strings unescaped).
fn param(params: &str, name: &str) -> Option<String> {
    let mut rest = params;
    loop {
        rest = rest.trim_start_matches([';', ' ', '\t']);
        if rest.is_empty() {
            return None;
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        rest = &rest[eq + 1..];
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            rest = &quoted[end?..];
            value
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            let value = rest[..end].trim().to_string();
            rest = &rest[end..];
            value
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let at = from + haystack[from..].iter().position(|&b| b == first)?;
        if haystack.get(at..at + needle.len()) == Some(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG header of w x h (enough for the checks; not a whole image).
    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut d = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        d.extend(w.to_be_bytes());
        d.extend(h.to_be_bytes());
        d.extend([8, 6, 0, 0, 0]);
        d
    }

    #[test]
    fn image_sizes_come_from_their_headers() {
        assert_eq!(dimensions(&png(640, 480)), Some((640, 480)));
        let gif = [b"GIF89a".as_slice(), &[0x20, 0x03, 0x58, 0x02]].concat();
        assert_eq!(dimensions(&gif), Some((800, 600)));
        // A JPEG with an APP0 segment, then SOF0 for 300x200.
        let jpeg = [
            &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00][..],
            &[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0xC8, 0x01, 0x2C],
        ]
        .concat();
        assert_eq!(dimensions(&jpeg), Some((300, 200)));
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X\0\0\0\0\0\0\0\0".to_vec();
        webp.extend([0x7F, 0x07, 0x00, 0x37, 0x04, 0x00]); // 1920 x 1080, minus one each
        assert_eq!(dimensions(&webp), Some((1920, 1080)));
        assert_eq!(dimensions(b"MZ\x90\0"), None);
        assert_eq!(dimensions(&[0xFF, 0xD8, 0xFF, 0xE0, 0xFF]), None);
    }

    #[test]
    fn the_checks_refuse_what_claude_cannot_take() {
        let sent = |name: &str, t: &str, data: Vec<u8>| Sent {
            name: name.into(),
            media_type: t.into(),
            data,
        };
        let status = |v: Vec<Sent>| check(v).err().map(|(s, _)| s.as_u16());
        assert_eq!(status(vec![sent("a.png", "image/png", png(10, 10))]), None);
        assert_eq!(
            status(vec![sent("a.png", "image/png", b"MZ".to_vec())]),
            Some(415)
        );
        assert_eq!(
            status(vec![sent("a.png", "image/jpeg", png(10, 10))]),
            Some(415)
        );
        assert_eq!(
            status(vec![sent("a.svg", "image/svg+xml", vec![])]),
            Some(415)
        );
        assert_eq!(
            status(vec![sent("a.png", "image/png", png(9000, 10))]),
            Some(400)
        );
        let big = [png(10, 10), vec![0; MAX_IMAGE_BYTES]].concat();
        assert_eq!(status(vec![sent("a.png", "image/png", big)]), Some(413));
        let many = (0..=MAX_IMAGES).map(|_| sent("a.png", "image/png", png(1, 1)));
        assert_eq!(status(many.collect()), Some(400));
        assert_eq!(status(vec![sent("../x", "text/plain", vec![])]), Some(400));
        assert_eq!(status(vec![sent("x", "text plain", vec![])]), Some(400));
        let file = check(vec![sent("r.pdf", "", vec![1])]).unwrap();
        assert_eq!(
            (file[0].media_type.as_str(), file[0].image),
            ("application/octet-stream", false)
        );
    }

    #[test]
    fn names_are_file_names() {
        for bad in [
            "",
            " ",
            "../etc/passwd",
            "a/b",
            "a\\b",
            ".env",
            "..",
            "a\nb",
            "a\0b",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_name("report 1.pdf").unwrap(), "report 1.pdf");
        let long = format!("{}.pdf", "x".repeat(300));
        let short = check_name(&long).unwrap();
        assert!(short.ends_with("x.pdf") && short.chars().count() == MAX_NAME_CHARS);
    }

    #[test]
    fn a_form_comes_apart() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhi; there\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"attachments\"; filename=\"a \\\"b\\\".png\"\r\n\
            Content-Type: image/png\r\n\r\n\x89PNG\r\n--Xy\r\n--XyZ--\r\n";
        assert_eq!(
            boundary("multipart/form-data; boundary=XyZ").as_deref(),
            Some("XyZ")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=x; boundary=\"XyZ\"").as_deref(),
            Some("XyZ")
        );
        assert_eq!(boundary("application/json"), None);
        let form = parse_form(body, "XyZ").unwrap();
        assert_eq!(form.fields, vec![("message".into(), "hi; there".into())]);
        assert_eq!(form.files.len(), 1);
        assert_eq!(form.files[0].name, "a \"b\".png");
        assert_eq!(form.files[0].media_type, "image/png");
        assert_eq!(form.files[0].data, b"\x89PNG\r\n--Xy");
        let empty =
            b"--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"\"\r\n\r\n\r\n--B--";
        assert!(parse_form(empty, "B").unwrap().files.is_empty());
        for broken in [
            &b"--XyZ\r\nno colon\r\n\r\nx\r\n--XyZ--"[..],
            b"nothing",
            b"--XyZ\r\n",
        ] {
            assert!(parse_form(broken, "XyZ").is_err());
        }
    }
}
