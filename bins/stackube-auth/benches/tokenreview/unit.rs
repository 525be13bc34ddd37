//! The unit tests of the TokenReview benchmark's pure helpers: the parsing of
//! Keystone's access log. They are a test target of their own (`bench_helpers` in `Cargo.toml`),
//! so that `cargo test -p stackube-auth` runs them: the benchmark has no test harness (and
//! cargo compiles it with `cfg(test)`, so tests beside the code would only be dead code there).

// What only the benchmark calls is dead code here.
#[allow(dead_code)]
mod access_log;

use access_log::Requests;

#[test]
fn validations_and_group_lists_are_counted_with_keystones_time() {
    let mut r = Requests::default();
    for line in [
        "[pid: 1|app: 0|req: 1/1] 127.0.0.1 () {26 vars in 484 bytes} [Tue Dec  1 19:04:30 2026] GET /v3/auth/tokens => generated 1248 bytes in 12 msecs (HTTP/1.1 200) 5 headers in 178 bytes (1 switches on core 0)",
        "[pid: 1|app: 0|req: 2/2] 127.0.0.1 () {26 vars in 484 bytes} [Tue Dec  1 19:04:30 2026] GET /v3/users/u1/groups? => generated 90 bytes in 7 msecs (HTTP/1.1 200) 5 headers in 178 bytes (1 switches on core 0)",
        "[pid: 1|app: 0|req: 3/3] 127.0.0.1 () {26 vars in 484 bytes} [Tue Dec  1 19:04:31 2026] GET /v3/auth/tokens => generated 1248 bytes in 20 msecs (HTTP/1.1 200) 5 headers in 178 bytes (1 switches on core 0)",
        // Issuing a token, listing users, another user's groups: other requests. A line that
        // is not a request: nothing.
        "[pid: 1|app: 0|req: 4/4] 127.0.0.1 () {30 vars in 538 bytes} [Tue Dec  1 19:04:29 2026] POST /v3/auth/tokens => generated 461 bytes in 1201 msecs (HTTP/1.1 201) 5 headers in 182 bytes (1 switches on core 0)",
        "[pid: 1|app: 0|req: 5/5] 127.0.0.1 () {26 vars in 484 bytes} [Tue Dec  1 19:04:30 2026] GET /v3/users? => generated 1248 bytes in 612 msecs (HTTP/1.1 200) 5 headers in 178 bytes (1 switches on core 0)",
        "[pid: 1|app: 0|req: 6/6] 127.0.0.1 () {26 vars in 484 bytes} [Tue Dec  1 19:04:30 2026] GET /v3/users/u2/groups => generated 90 bytes in 7 msecs (HTTP/1.1 200) 5 headers in 178 bytes (1 switches on core 0)",
        "*** uWSGI is running in multiple interpreter mode ***",
    ] {
        r.add_line(line, "u1");
    }
    assert_eq!(
        r,
        Requests {
            validations: 2,
            group_lists: 1,
            validation_ms: 32,
            group_list_ms: 7,
            other: 3,
        }
    );
    assert_eq!(r.total(), 3);
}
