//! The page's entry point: mount the app.

fn main() {
    // Only debug builds (`trunk serve`) print a panic's message to the console: the hook
    // links the panic-message formatting, 1.2 KB of the release page's gzipped wasm, and
    // a release panic still shows in the console (as `unreachable`).
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(wstime_frontend::App);
}
