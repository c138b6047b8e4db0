// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

use crate::*;
use bytes::Bytes;
use http::header;

#[derive(Debug, Clone)]
pub struct CaseHeaderName(CaseBytes);

// drio patch: the bytes of a case-preserving name. A `HeaderName` outside the titled table is
// kept as it is: its bytes are already the (lower-case) wire form, and `HeaderName` does not
// hand out its `Bytes`, so sharing it is the only way not to copy them into a new allocation.
#[derive(Debug, Clone)]
enum CaseBytes {
    Bytes(Bytes),
    Name(HeaderName),
}

impl CaseHeaderName {
    pub fn new(name: String) -> Self {
        CaseHeaderName(CaseBytes::Bytes(name.into()))
    }
}

impl CaseHeaderName {
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            CaseBytes::Bytes(b) => b,
            CaseBytes::Name(n) => n.as_str().as_bytes(),
        }
    }

    pub fn from_slice(buf: &[u8]) -> Self {
        CaseHeaderName(CaseBytes::Bytes(Bytes::copy_from_slice(buf)))
    }
}

/// A trait that converts into case-sensitive header names.
pub trait IntoCaseHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName;

    /// drio patch: the case-preserving name together with the parsed [`HeaderName`].
    ///
    /// The default parses the case-preserving bytes, as `insert_header` always did. A
    /// [`HeaderName`] is already parsed: its implementations return it as it is, so a caller
    /// that passes a `HeaderName` (a constant, say) pays no second validation and no
    /// allocation of a lower-cased copy.
    fn into_case_and_header_name(
        self,
    ) -> std::result::Result<(CaseHeaderName, HeaderName), header::InvalidHeaderName>
    where
        Self: Sized,
    {
        let case = self.into_case_header_name();
        let name = HeaderName::from_bytes(case.as_slice())?;
        Ok((case, name))
    }
}

impl IntoCaseHeaderName for CaseHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        self
    }
}

impl IntoCaseHeaderName for String {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(CaseBytes::Bytes(self.into()))
    }
}

impl IntoCaseHeaderName for &'static str {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(CaseBytes::Bytes(self.into()))
    }
}

impl IntoCaseHeaderName for HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        titled_header_name(&self)
    }

    // drio patch: no re-parse of a name that is parsed already.
    fn into_case_and_header_name(
        self,
    ) -> std::result::Result<(CaseHeaderName, HeaderName), header::InvalidHeaderName> {
        Ok((titled_header_name(&self), self))
    }
}

impl IntoCaseHeaderName for &HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        titled_header_name(self)
    }

    // drio patch: no re-parse of a name that is parsed already.
    fn into_case_and_header_name(
        self,
    ) -> std::result::Result<(CaseHeaderName, HeaderName), header::InvalidHeaderName> {
        Ok((titled_header_name(self), self.clone()))
    }
}

impl IntoCaseHeaderName for Bytes {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(CaseBytes::Bytes(self))
    }
}

fn titled_header_name(header_name: &HeaderName) -> CaseHeaderName {
    CaseHeaderName(titled_header_name_str(header_name).map_or_else(
        // drio patch: shared, not copied (see `CaseBytes`).
        || CaseBytes::Name(header_name.clone()),
        |s| CaseBytes::Bytes(Bytes::from_static(s.as_bytes())),
    ))
}

pub(crate) fn titled_header_name_str(header_name: &HeaderName) -> Option<&'static str> {
    Some(match *header_name {
        header::ACCEPT_RANGES => "Accept-Ranges",
        header::AGE => "Age",
        header::CACHE_CONTROL => "Cache-Control",
        header::CONNECTION => "Connection",
        header::CONTENT_TYPE => "Content-Type",
        header::CONTENT_ENCODING => "Content-Encoding",
        header::CONTENT_LENGTH => "Content-Length",
        header::DATE => "Date",
        header::TRANSFER_ENCODING => "Transfer-Encoding",
        header::HOST => "Host",
        header::SERVER => "Server",
        header::SET_COOKIE => "Set-Cookie",
        // TODO: add more const header here to map to their titled case
        // TODO: automatically upper case the first letter?
        _ => {
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_case_header_name() {
        assert_eq!("FoO".into_case_header_name().as_slice(), b"FoO");
        assert_eq!("FoO".to_string().into_case_header_name().as_slice(), b"FoO");
        assert_eq!(header::SERVER.into_case_header_name().as_slice(), b"Server");
    }

    // drio patch
    #[test]
    fn test_case_and_header_name() {
        let (case, name) = "X-Custom".into_case_and_header_name().unwrap();
        assert_eq!((case.as_slice(), name.as_str()), (&b"X-Custom"[..], "x-custom"));
        assert!("bad name".into_case_and_header_name().is_err());
        let custom = HeaderName::from_static("x-request-id");
        let (case, name) = (&custom).into_case_and_header_name().unwrap();
        assert_eq!((case.as_slice(), &name), (&b"x-request-id"[..], &custom));
        let (case, name) = header::HOST.into_case_and_header_name().unwrap();
        assert_eq!((case.as_slice(), name), (&b"Host"[..], header::HOST));
        let parsed = HeaderName::from_bytes(b"X-Parsed").unwrap();
        assert_eq!(parsed.clone().into_case_header_name().as_slice(), b"x-parsed");
    }
}
