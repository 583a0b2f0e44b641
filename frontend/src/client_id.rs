//! The tab's client id: random, kept in `sessionStorage`, so every reconnect from this tab
//! names the same session and resumes its count.

/// The `sessionStorage` key holding the id.
const STORAGE_KEY: &str = "wstime-client-id";

/// The id kept for this tab, created on first use.
///
/// `sessionStorage` is per tab: a second tab is a second session, as a second browser
/// would be. Where storage is unavailable (private modes, sandboxed frames) the id lives
/// only as long as the page, which still resumes across reconnects.
pub fn for_this_tab() -> String {
    let storage = web_sys::window().and_then(|w| w.session_storage().ok().flatten());
    if let Some(id) = storage.as_ref().and_then(|s| s.get_item(STORAGE_KEY).ok().flatten()) {
        if wstime_protocol::ClientId::parse(&id).is_ok() {
            return id;
        }
    }
    let id = random_uuid_v4();
    if let Some(storage) = storage {
        let _ = storage.set_item(STORAGE_KEY, &id);
    }
    id
}

/// A UUID v4 from the browser's cryptographic generator. `getRandomValues` is used rather
/// than `randomUUID` because the latter exists only on secure origins, and a load balancer
/// reached over plain http is not one.
fn random_uuid_v4() -> String {
    let mut bytes = [0u8; 16];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .and_then(|c| c.get_random_values_with_u8_array(&mut bytes).ok())
        .is_some();
    if !filled {
        // No Web Crypto at all: fall back to Math.random, still unique enough for a session.
        for byte in &mut bytes {
            *byte = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}
