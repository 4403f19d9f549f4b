//! Attachments (SPEC §4 photo; documents of applications): what an upload must be, where its
//! bytes live and who may read them.
//!
//! - [`accept`] is pure: size limits, the type from the magic bytes only (never the name;
//!   images are decoded with the `image` crate to be sure), the file name checked for display
//!   (a name with a path separator, NUL or control character is refused), photos larger than
//!   1 inch (120×168) scaled down keeping their aspect; every photo re-encoded from its pixels
//!   (no EXIF or other metadata kept; GIF stored as PNG). Documents are kept byte for byte.
//! - [`store`] keeps the bytes in `<data dir>/attachments/<generated id>` (0600, outside any
//!   served folder) and the row in `attachments`, in one transaction with its audit record; a
//!   failed transaction removes the file.
//! - [`routes`] serves them to actors whose scope covers the organisation (`access::attachment`,
//!   out of scope → 404) with `Content-Disposition`, `nosniff` and `CSP: sandbox`.

pub mod routes;
pub mod store;

use std::io::Cursor;

use axum::http::StatusCode;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Largest document (pdf, jpg, png).
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024 * 1024;
/// Largest photo as uploaded (jpg, png, gif).
pub const MAX_PHOTO_BYTES: usize = 2 * 1024 * 1024;
/// Largest request body of an upload route: a document plus the multipart framing and fields.
pub const MAX_UPLOAD_BODY_BYTES: usize = MAX_DOCUMENT_BYTES + 64 * 1024;
/// The 1-inch photo box: larger photos are scaled down to fit it.
pub const PHOTO_WIDTH: u32 = 120;
pub const PHOTO_HEIGHT: u32 = 168;
/// Longest file name kept for display (characters).
const MAX_NAME_CHARS: usize = 200;
/// Images larger than this (either side) are refused before decoding.
const MAX_IMAGE_SIDE: u32 = 10_000;

/// What an upload is for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A document of an application (pdf, jpg, png; at most 5 MB), e.g. 实名认证采集表.
    Document,
    /// A member's 1-inch photo (jpg, png, gif; at most 2 MB; shown 120×168; re-encoded).
    Photo,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Document => "document",
            Kind::Photo => "photo",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s.trim() {
            "document" => Some(Kind::Document),
            "photo" => Some(Kind::Photo),
            _ => None,
        }
    }

    fn max_bytes(self) -> usize {
        match self {
            Kind::Document => MAX_DOCUMENT_BYTES,
            Kind::Photo => MAX_PHOTO_BYTES,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Document => "附件",
            Kind::Photo => "照片",
        }
    }
}

/// The file types, told by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Pdf,
    Jpeg,
    Png,
    Gif,
}

impl FileType {
    /// The type of `bytes` from its magic bytes; `None` for anything else.
    pub fn sniff(bytes: &[u8]) -> Option<FileType> {
        if bytes.starts_with(b"%PDF-") {
            Some(FileType::Pdf)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(FileType::Jpeg)
        } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
            Some(FileType::Png)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(FileType::Gif)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            FileType::Pdf => "application/pdf",
            FileType::Jpeg => "image/jpeg",
            FileType::Png => "image/png",
            FileType::Gif => "image/gif",
        }
    }

    pub fn is_image(self) -> bool {
        !matches!(self, FileType::Pdf)
    }

    fn image_format(self) -> Option<image::ImageFormat> {
        match self {
            FileType::Pdf => None,
            FileType::Jpeg => Some(image::ImageFormat::Jpeg),
            FileType::Png => Some(image::ImageFormat::Png),
            FileType::Gif => Some(image::ImageFormat::Gif),
        }
    }

    fn allowed_for(self, kind: Kind) -> bool {
        match kind {
            Kind::Document => matches!(self, FileType::Pdf | FileType::Jpeg | FileType::Png),
            Kind::Photo => self.is_image(),
        }
    }
}

/// An upload that passed every check, ready to store.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub kind: Kind,
    /// The name as the user gave it, for display and `Content-Disposition` only.
    pub file_name: String,
    pub content_type: &'static str,
    /// The bytes to store (a photo's re-encoded bytes, a document's as uploaded).
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, lower-case hex.
    pub sha256: String,
    /// Width and height of an image as stored.
    pub dimensions: Option<(u32, u32)>,
    /// The photo was larger than 120×168 and was scaled down.
    pub scaled: bool,
}

/// The 413 of an upload over its limit.
pub fn too_large(kind: Kind) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        format!(
            "{}过大：不能超过 {} MB",
            kind.label(),
            kind.max_bytes() / (1024 * 1024)
        ),
    )
    .with_field("file")
}

/// The 413 of an upload request whose body is over the upload routes' limit.
pub fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        format!(
            "上传的文件过大：附件不能超过 {} MB，照片不能超过 {} MB",
            MAX_DOCUMENT_BYTES / (1024 * 1024),
            MAX_PHOTO_BYTES / (1024 * 1024)
        ),
    )
    .with_field("file")
}

/// Checks an upload: size, type by magic bytes (and a full decode for images), the file name;
/// scales a large photo down. Nothing here touches the disk or the database.
pub fn accept(kind: Kind, file_name: &str, bytes: &[u8]) -> Result<Accepted, ApiError> {
    let file_name = display_name(file_name)?;
    if bytes.is_empty() {
        return Err(ApiError::field("file", "请选择要上传的文件（文件为空）"));
    }
    if bytes.len() > kind.max_bytes() {
        return Err(too_large(kind));
    }
    let wrong_type = || {
        ApiError::field(
            "file",
            match kind {
                Kind::Document => {
                    "文件类型不受支持：附件只接受 PDF、JPG、PNG 文件（按文件内容判断，与文件名无关）"
                }
                Kind::Photo => {
                    "文件类型不受支持：照片只接受 JPG、PNG、GIF 图片（按文件内容判断，与文件名无关）"
                }
            },
        )
    };
    let ty = FileType::sniff(bytes)
        .filter(|t| t.allowed_for(kind))
        .ok_or_else(wrong_type)?;
    let Some(format) = ty.image_format() else {
        return Ok(Accepted {
            kind,
            file_name,
            content_type: ty.content_type(),
            sha256: sha256_hex(bytes),
            bytes: bytes.to_vec(),
            dimensions: None,
            scaled: false,
        });
    };
    let damaged = || ApiError::field("file", "图片已损坏或无法识别，请重新选择文件");
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let img = reader.decode().map_err(|_| damaged())?;
    let (w, h) = (img.width(), img.height());
    if kind == Kind::Photo {
        // Photos are always re-encoded from their pixels, so no metadata (EXIF location, camera,
        // comments) is kept; larger than the 1-inch box they are scaled to fit, keeping the
        // aspect. JPEG stays JPEG; PNG and GIF (its first frame) become PNG.
        let scaled = w > PHOTO_WIDTH || h > PHOTO_HEIGHT;
        let img = if scaled {
            img.resize(
                PHOTO_WIDTH,
                PHOTO_HEIGHT,
                image::imageops::FilterType::Lanczos3,
            )
        } else {
            img
        };
        let (out_format, content_type) = match ty {
            FileType::Jpeg => (image::ImageFormat::Jpeg, "image/jpeg"),
            _ => (image::ImageFormat::Png, "image/png"),
        };
        let img = if out_format == image::ImageFormat::Jpeg {
            image::DynamicImage::ImageRgb8(img.to_rgb8())
        } else {
            img
        };
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), out_format)
            .map_err(ApiError::internal)?;
        return Ok(Accepted {
            kind,
            file_name,
            content_type,
            sha256: sha256_hex(&out),
            dimensions: Some((img.width(), img.height())),
            bytes: out,
            scaled,
        });
    }
    Ok(Accepted {
        kind,
        file_name,
        content_type: ty.content_type(),
        sha256: sha256_hex(bytes),
        bytes: bytes.to_vec(),
        dimensions: Some((w, h)),
        scaled: false,
    })
}

/// The file name as shown: trimmed; refused when empty, too long, or carrying a path separator,
/// NUL or another control character, or when it is `.` or `..` — such a name is not a file's
/// name but an attempt at a path.
pub fn display_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let bad = |why: &str| {
        ApiError::field(
            "file",
            format!("文件名不合法：{why}，请修改文件名后重新上传"),
        )
    };
    if name.is_empty() {
        return Err(bad("文件名为空"));
    }
    if name.contains(['/', '\\']) {
        return Err(bad("不能包含路径分隔符 / 或 \\"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(bad("不能包含控制字符"));
    }
    if name == "." || name == ".." || name.starts_with("..") {
        return Err(bad("不能以 .. 开头"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(bad("文件名过长"));
    }
    Ok(name.to_string())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The largest body the route at (`method`, `path`) accepts: the upload routes' own limit, else
/// the API's ([`crate::state::MAX_BODY_BYTES`]).
pub fn body_limit(method: &axum::http::Method, path: &str) -> usize {
    if crate::import::is_upload_route(method, path) {
        crate::import::MAX_UPLOAD_BYTES
    } else if is_upload_route(method, path) {
        MAX_UPLOAD_BODY_BYTES
    } else {
        crate::state::MAX_BODY_BYTES
    }
}

/// `POST /api/v1/attachments`, `PUT /api/v1/members/{id}/photo`, `POST /members/{id}/photo`.
pub fn is_upload_route(method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    let member_photo = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("/photo"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
    };
    (*method == Method::POST && path == "/api/v1/attachments")
        || (*method == Method::PUT && member_photo("/api/v1/members/"))
        || (*method == Method::POST && member_photo("/members/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn types_come_from_the_bytes_not_the_name() {
        let pdf = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n";
        let ok = accept(Kind::Document, "申请表.pdf", pdf).unwrap();
        assert_eq!(ok.content_type, "application/pdf");
        // An executable named .pdf, an SVG with a script named .png, HTML: refused.
        let exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff";
        assert_eq!(
            accept(Kind::Document, "a.pdf", exe).unwrap_err().status,
            400
        );
        let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
        assert_eq!(accept(Kind::Photo, "a.png", svg).unwrap_err().status, 400);
        assert!(accept(Kind::Document, "a.png", b"<html><body>x</body></html>").is_err());
        // A PDF is no photo; a PNG header on garbage is no image.
        assert!(accept(Kind::Photo, "a.jpg", pdf).is_err());
        let mut fake = png(10, 10);
        fake.truncate(20);
        assert!(accept(Kind::Photo, "a.png", &fake).is_err());
    }

    #[test]
    fn names_that_are_paths_are_refused() {
        let p = png(10, 10);
        for name in [
            "../../etc/passwd",
            "a/b.png",
            "a\\b.png",
            "x\0.png",
            "..",
            "",
            "  ",
        ] {
            assert!(accept(Kind::Photo, name, &p).is_err(), "{name:?}");
        }
        assert_eq!(
            accept(Kind::Photo, " 照片 1.png ", &p).unwrap().file_name,
            "照片 1.png"
        );
    }

    #[test]
    fn sizes_are_limited_and_large_photos_scaled() {
        let mut big = b"%PDF-1.4\n".to_vec();
        big.resize(MAX_DOCUMENT_BYTES + 1, b' ');
        assert_eq!(
            accept(Kind::Document, "a.pdf", &big).unwrap_err().status,
            413
        );
        let photo = accept(Kind::Photo, "p.png", &png(600, 600)).unwrap();
        assert!(photo.scaled);
        assert_eq!(photo.dimensions, Some((120, 120)));
        let tall = accept(Kind::Photo, "p.png", &png(300, 840)).unwrap();
        assert_eq!(tall.dimensions, Some((60, 168)));
        let small = accept(Kind::Photo, "p.png", &png(100, 140)).unwrap();
        assert!(!small.scaled);
        assert_eq!(small.dimensions, Some((100, 140)));
        assert_eq!(image::load_from_memory(&small.bytes).unwrap().width(), 100);
        // Documents are kept as uploaded.
        let scan = png(300, 200);
        assert_eq!(accept(Kind::Document, "s.png", &scan).unwrap().bytes, scan);
    }

    #[test]
    fn photos_lose_their_metadata() {
        let img = image::RgbImage::from_fn(60, 80, |x, y| image::Rgb([x as u8, y as u8, 50]));
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .unwrap();
        // An APP1 (Exif) segment right after SOI.
        let payload = b"Exif\0\0GPS-LOCATION-SECRET";
        let mut with_exif = jpeg[..2].to_vec();
        with_exif.extend([0xFF, 0xE1]);
        with_exif.extend(((payload.len() + 2) as u16).to_be_bytes());
        with_exif.extend(payload);
        with_exif.extend(&jpeg[2..]);
        let photo = accept(Kind::Photo, "p.jpg", &with_exif).unwrap();
        assert_eq!(photo.content_type, "image/jpeg");
        assert_eq!(photo.dimensions, Some((60, 80)));
        assert!(!photo.bytes.windows(10).any(|w| w == b"GPS-LOCATI"));
        // Kept in a document, byte for byte.
        let doc = accept(Kind::Document, "p.jpg", &with_exif).unwrap();
        assert_eq!(doc.bytes, with_exif);
    }

    #[test]
    fn upload_routes_have_their_own_limit() {
        use axum::http::Method;
        assert!(is_upload_route(&Method::POST, "/api/v1/attachments"));
        assert!(is_upload_route(&Method::PUT, "/api/v1/members/abc/photo"));
        assert!(is_upload_route(&Method::POST, "/members/abc/photo"));
        assert!(!is_upload_route(&Method::POST, "/api/v1/members"));
        assert!(!is_upload_route(&Method::PUT, "/api/v1/members/a/b/photo"));
    }
}
