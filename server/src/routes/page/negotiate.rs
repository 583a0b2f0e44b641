//! Which precompressed copy a request accepts, from its `Accept-Encoding` (RFC 9110
//! §12.5.3): the codings it accepts, best first.

use actix_web::http::header::{AcceptEncoding, ContentEncoding, Encoding, Quality};

/// A coding the build precompressed the hashed assets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
}

impl Coding {
    /// Ties go to the first: brotli's copy of the page's wasm is 14% smaller than gzip's.
    const ALL: [Self; 2] = [Self::Brotli, Self::Gzip];

    /// The suffix of its copy beside the original (what scripts/precompress.sh writes).
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Gzip => "gz",
        }
    }

    /// Its name in `Content-Encoding`.
    pub fn content_encoding(self) -> ContentEncoding {
        match self {
            Self::Brotli => ContentEncoding::Brotli,
            Self::Gzip => ContentEncoding::Gzip,
        }
    }

    fn encoding(self) -> Encoding {
        Encoding::Known(self.content_encoding())
    }
}

/// The codings `accept` allows, most wanted first (equal weights: brotli first). Each is
/// weighed by its own entry, or else by `*`'s; `q=0` refuses it. Without the header (or
/// with one that does not parse) none: the original, as RFC 9110 advises when the
/// client says nothing.
pub fn acceptable(accept: Option<&AcceptEncoding>) -> Vec<Coding> {
    let Some(accept) = accept else { return Vec::new() };
    let weight = |coding: Coding| {
        let named = accept.iter().find(|entry| entry.item.item() == Some(&coding.encoding()));
        let any = || accept.iter().find(|entry| entry.item.is_any());
        named.or_else(any).map_or(Quality::ZERO, |entry| entry.quality)
    };
    let mut codings: Vec<(Coding, Quality)> = Coding::ALL
        .into_iter()
        .map(|coding| (coding, weight(coding)))
        .filter(|&(_, quality)| quality > Quality::ZERO)
        .collect();
    // Stable: equal weights keep `ALL`'s order.
    codings.sort_by_key(|&(_, quality)| std::cmp::Reverse(quality));
    codings.into_iter().map(|(coding, _)| coding).collect()
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::Header as _;

    use super::{acceptable, Coding::*};

    fn codings(header: &str) -> Vec<super::Coding> {
        let request = actix_web::test::TestRequest::default()
            .insert_header(("accept-encoding", header))
            .to_http_request();
        acceptable(super::AcceptEncoding::parse(&request).ok().as_ref())
    }

    #[test]
    fn brotli_wins_a_tie_whatever_the_order() {
        assert_eq!(codings("gzip, deflate, br, zstd"), [Brotli, Gzip]);
        assert_eq!(codings("gzip;q=0.8, br;q=0.8"), [Brotli, Gzip]);
    }

    #[test]
    fn weights_are_honoured() {
        assert_eq!(codings("br;q=0.5, gzip"), [Gzip, Brotli]);
        assert_eq!(codings("gzip;q=0.9, br;q=0.1"), [Gzip, Brotli]);
    }

    #[test]
    fn q_zero_refuses() {
        assert_eq!(codings("br;q=0, gzip"), [Gzip]);
        assert_eq!(codings("br, gzip;q=0"), [Brotli]);
        assert_eq!(codings("br;q=0, gzip;q=0.0"), []);
    }

    #[test]
    fn a_star_stands_for_what_is_not_named() {
        assert_eq!(codings("*"), [Brotli, Gzip]);
        assert_eq!(codings("gzip;q=0.5, *;q=0.2"), [Gzip, Brotli]);
        assert_eq!(codings("br;q=0, *"), [Gzip]);
        assert_eq!(codings("*;q=0"), []);
    }

    #[test]
    fn no_header_or_other_codings_only_mean_the_original() {
        assert_eq!(acceptable(None), []);
        assert_eq!(codings("identity"), []);
        assert_eq!(codings("deflate, zstd"), []);
    }

    #[test]
    fn coding_names_are_case_insensitive() {
        assert_eq!(codings("BR, GZip"), [Brotli, Gzip]);
    }
}
