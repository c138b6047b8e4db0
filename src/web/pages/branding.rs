//! Per-app branding on the pages a person sees (consent, connect): a display
//! name, a logo, an accent colour and the operator's company URL. Set in the
//! config file (`[apps.branding]`, snake_case) or through the management API
//! (`branding`, camelCase), validated here by one function for both.
//!
//! Why the rules are strict: the logo is loaded by the end user's browser,
//! so it may only come from hosts the operator listed (`[pages] logo_hosts`,
//! https only) or be a small inline raster image (`data:image/png|jpeg|webp`,
//! at most [`MAX_LOGO_BYTES`]). SVG is refused: an SVG document can carry
//! script. The accent colour is `#rrggbb`; its text colour is chosen for
//! WCAG 2.2 contrast (SC 1.4.3, at least 4.5:1), so no accent makes a button
//! unreadable.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// Largest decoded inline logo.
pub(crate) const MAX_LOGO_BYTES: usize = 32 * 1024;
const MAX_URL: usize = 2048;
const MAX_NAME: usize = 80;

/// An app's branding as stored and as the API shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Branding {
    #[serde(
        default,
        alias = "display_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) display_name: Option<String>,
    #[serde(default, alias = "logo_url", skip_serializing_if = "Option::is_none")]
    pub(crate) logo_url: Option<String>,
    #[serde(
        default,
        alias = "accent_color",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) accent_color: Option<String>,
    #[serde(
        default,
        alias = "company_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) company_url: Option<String>,
}

/// Why branding is refused; each names its field (camelCase, as the API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BrandingError {
    #[error("must be 1-{MAX_NAME} characters without control characters")]
    DisplayName,
    #[error("must be an https URL on a host in [pages] logo_hosts, or a data:image/png, image/jpeg or image/webp base64 URI")]
    LogoScheme,
    #[error("host `{0}` is not in [pages] logo_hosts")]
    LogoHost(String),
    #[error("inline logo is larger than {MAX_LOGO_BYTES} bytes")]
    LogoTooLarge,
    #[error("inline logo is not valid base64 of a png, jpeg or webp image")]
    LogoData,
    #[error("must be a colour like #1f5fbf")]
    AccentColor,
    #[error("must be an https URL")]
    CompanyUrl,
}

impl BrandingError {
    /// The API field the error is about.
    pub(crate) fn field(&self) -> &'static str {
        match self {
            Self::DisplayName => "branding.displayName",
            Self::LogoScheme | Self::LogoHost(_) | Self::LogoTooLarge | Self::LogoData => {
                "branding.logoUrl"
            }
            Self::AccentColor => "branding.accentColor",
            Self::CompanyUrl => "branding.companyUrl",
        }
    }

    /// The config file's key for the same field.
    pub(crate) fn toml_key(&self) -> String {
        let f = self.field().trim_start_matches("branding.");
        let snake: String = f
            .chars()
            .flat_map(|c| {
                if c.is_ascii_uppercase() {
                    vec!['_', c.to_ascii_lowercase()]
                } else {
                    vec![c]
                }
            })
            .collect();
        format!("branding.{snake}")
    }
}

impl Branding {
    /// Checks every field; `logo_hosts` are the operator's allowed logo hosts.
    pub(crate) fn validate(&self, logo_hosts: &[String]) -> Result<(), BrandingError> {
        if let Some(n) = &self.display_name {
            let n = n.trim();
            if n.is_empty() || n.chars().count() > MAX_NAME || n.chars().any(char::is_control) {
                return Err(BrandingError::DisplayName);
            }
        }
        if let Some(logo) = &self.logo_url {
            logo_source(logo, logo_hosts)?;
        }
        if let Some(c) = &self.accent_color {
            parse_hex(c).ok_or(BrandingError::AccentColor)?;
        }
        if let Some(u) = &self.company_url {
            let ok = u.len() <= MAX_URL
                && url::Url::parse(u)
                    .is_ok_and(|p| p.scheme() == "https" && p.host_str().is_some());
            if !ok {
                return Err(BrandingError::CompanyUrl);
            }
        }
        Ok(())
    }
}

/// The CSP `img-src` source a valid logo needs (`data:` or its https
/// origin), or why the logo is refused. Pages call it again at render time,
/// so a host removed from `logo_hosts` stops loading at once.
pub(crate) fn logo_source(logo: &str, logo_hosts: &[String]) -> Result<String, BrandingError> {
    if let Some(rest) = logo.strip_prefix("data:") {
        let (mime, data) = rest
            .split_once(";base64,")
            .ok_or(BrandingError::LogoScheme)?;
        let magic: &[u8] = match mime {
            "image/png" => b"\x89PNG\r\n\x1a\n",
            "image/jpeg" => b"\xff\xd8\xff",
            "image/webp" => b"RIFF",
            _ => return Err(BrandingError::LogoScheme),
        };
        if data.len() > MAX_LOGO_BYTES.div_ceil(3) * 4 {
            return Err(BrandingError::LogoTooLarge);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| BrandingError::LogoData)?;
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(BrandingError::LogoTooLarge);
        }
        if !bytes.starts_with(magic) || (mime == "image/webp" && bytes.get(8..12) != Some(b"WEBP"))
        {
            return Err(BrandingError::LogoData);
        }
        return Ok("data:".into());
    }
    if logo.len() > MAX_URL {
        return Err(BrandingError::LogoScheme);
    }
    let u = url::Url::parse(logo).map_err(|_| BrandingError::LogoScheme)?;
    if u.scheme() != "https" || !u.username().is_empty() || u.password().is_some() {
        return Err(BrandingError::LogoScheme);
    }
    let host = u.host_str().ok_or(BrandingError::LogoScheme)?;
    if !logo_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Err(BrandingError::LogoHost(host.to_string()));
    }
    Ok(u.origin().ascii_serialization())
}

/// `#rrggbb` as RGB bytes.
fn parse_hex(c: &str) -> Option<[u8; 3]> {
    let hex = c.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u32::from_str_radix(hex, 16).ok()?;
    Some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
}

/// WCAG 2.2 relative luminance.
fn luminance([r, g, b]: [u8; 3]) -> f64 {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
}

fn contrast(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    (hi + 0.05) / (lo + 0.05)
}

/// The accent colour (lower-case `#rrggbb`) and the text colour to put on
/// it: white or black, whichever contrasts more (one of them always reaches
/// 4.5:1 on any colour).
pub(crate) fn accent_pair(c: &str) -> Option<(String, &'static str)> {
    let rgb = parse_hex(c)?;
    let l = luminance(rgb);
    let fg = if contrast(l, 1.0) >= contrast(l, 0.0) {
        "#ffffff"
    } else {
        "#000000"
    };
    Some((c.to_ascii_lowercase(), fg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> String {
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        b.extend([0u8; 16]);
        format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(b)
        )
    }

    #[test]
    fn logos_come_from_listed_https_hosts_or_small_raster_data() {
        let hosts = vec!["cdn.example.com".to_string()];
        assert_eq!(
            logo_source("https://CDN.example.com/l.png", &hosts).unwrap(),
            "https://cdn.example.com"
        );
        assert_eq!(logo_source(&png(), &hosts).unwrap(), "data:");
        for bad in [
            "http://cdn.example.com/l.png",
            "https://user@cdn.example.com/l.png",
            "javascript:alert(1)",
            "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",
            "data:text/html;base64,PGgxPg==",
        ] {
            assert_eq!(
                logo_source(bad, &hosts),
                Err(BrandingError::LogoScheme),
                "{bad}"
            );
        }
        assert!(matches!(
            logo_source("https://evil.example/l.png", &hosts),
            Err(BrandingError::LogoHost(_))
        ));
        // A PNG label on something else.
        assert_eq!(
            logo_source("data:image/png;base64,PHN2Zz48L3N2Zz4=", &hosts),
            Err(BrandingError::LogoData)
        );
        let big = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(vec![0u8; MAX_LOGO_BYTES + 1])
        );
        assert_eq!(logo_source(&big, &hosts), Err(BrandingError::LogoTooLarge));
    }

    #[test]
    fn every_accent_gets_readable_text() {
        for c in [
            "#000000", "#ffffff", "#ffff00", "#1f5fbf", "#777777", "#808080",
        ] {
            let (bg, fg) = accent_pair(c).unwrap();
            let l = luminance(parse_hex(&bg).unwrap());
            let lf = luminance(parse_hex(fg).unwrap());
            assert!(contrast(l, lf) >= 4.5, "{c} with {fg}");
        }
        for bad in ["1f5fbf", "#1f5fb", "#1f5fbg", "red", "#1f5fbf;}"] {
            assert!(accent_pair(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn fields_are_named_for_the_api_and_the_config_file() {
        assert_eq!(BrandingError::AccentColor.field(), "branding.accentColor");
        assert_eq!(
            BrandingError::AccentColor.toml_key(),
            "branding.accent_color"
        );
    }
}
