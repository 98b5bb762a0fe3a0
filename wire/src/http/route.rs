//! A request target as the endpoint it calls: `DELETE /v3/users/<uuid>` is one endpoint
//! however many users there are, so the ids in a path become `{id}` and the query string
//! goes. Only the shape of a segment decides: Scalpels does not know the services' URL maps.

use std::borrow::Cow;

/// The route of a request target: its path without query string or fragment (and without
/// scheme and authority, for a proxy's absolute-form target), each segment that is an id
/// replaced by `{id}`; an extension after an id stays (`/ports/{id}.json`). Ids are decimal
/// numbers, UUIDs (with or without dashes), hex strings of 16 or more digits (keystone's ids)
/// and opaque tokens (see `is_token`). Words and version segments (`v3`, `v2.1`,
/// `os-volume_attachments`) stay as they are.
pub fn route(target: &str) -> String {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let path = match path.split_once("://") {
        // Absolute-form (`http://host:port/path`): the path is after the authority.
        Some((_, rest)) if !path.starts_with('/') => rest.find('/').map_or("/", |at| &rest[at..]),
        _ => path,
    };
    path.split('/').map(segment).collect::<Vec<_>>().join("/")
}

fn segment(text: &str) -> Cow<'_, str> {
    // A short alphabetic extension names the format asked for (`.json`, `.xml`), not the id.
    let (stem, extension) = match text.rsplit_once('.') {
        Some((stem, extension))
            if (1..=5).contains(&extension.len())
                && extension.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            (stem, Some(extension))
        }
        _ => (text, None),
    };
    match (is_id(stem), extension) {
        (false, _) => Cow::Borrowed(text),
        (true, None) => Cow::Borrowed("{id}"),
        (true, Some(extension)) => Cow::Owned(format!("{{id}}.{extension}")),
    }
}

fn is_id(text: &str) -> bool {
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let uuid = || {
        let groups: Vec<&str> = text.split('-').collect();
        groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]) && groups.iter().all(|g| hex(g))
    };
    !text.is_empty()
        && (text.bytes().all(|b| b.is_ascii_digit())
            || (text.len() >= 16 && hex(text))
            || uuid()
            || is_token(text))
}

/// An opaque token or generated id: 16 or more of base64url's characters (`[A-Za-z0-9_-]`),
/// with letters and digits both (Fernet tokens, `req-<uuid>` request ids, swift's
/// `AUTH_<project>` accounts, ULIDs). Upper-case words joined by `_` or `-` are names of the
/// API, not ids, whatever digits they hold (placement's traits and resource classes:
/// `HW_CPU_X86_AVX512F`), so those need a lower-case letter to count.
fn is_token(text: &str) -> bool {
    let has = |f: fn(&u8) -> bool| text.as_bytes().iter().any(f);
    text.len() >= 16
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && has(u8::is_ascii_digit)
        && has(u8::is_ascii_alphabetic)
        && (has(u8::is_ascii_lowercase) || !has(|&b| b == b'_' || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::route;

    const UUID: &str = "3f2b9c1e-8d4a-4b6f-9e2d-7a1c5b8e0f34";

    #[test]
    fn openstack_paths_have_their_ids_replaced() {
        let keystone_id = "a3f1c9e07b2d4e6f8a1b3c5d7e9f0a2b";
        for (path, want) in [
            (
                format!("/v3/users/{keystone_id}/projects"),
                "/v3/users/{id}/projects",
            ),
            (format!("/v3/users/{UUID}"), "/v3/users/{id}"),
            (
                format!("/v2.1/servers/{UUID}/action"),
                "/v2.1/servers/{id}/action",
            ),
            (format!("/v2/images/{UUID}/file"), "/v2/images/{id}/file"),
            (format!("/v2.0/ports/{UUID}.json"), "/v2.0/ports/{id}.json"),
            (
                format!("/v2.1/{keystone_id}/flavors/42/os-extra_specs"),
                "/v2.1/{id}/flavors/{id}/os-extra_specs",
            ),
            (
                format!("/v2.1/servers/{UUID}/os-instance-actions/req-{UUID}"),
                "/v2.1/servers/{id}/os-instance-actions/{id}",
            ),
            (
                format!("/v1/AUTH_{keystone_id}/backups/volume.tar"),
                "/v1/{id}/backups/volume.tar",
            ),
            (
                format!(
                    "/v3/{}/volumes/{}",
                    keystone_id.to_uppercase(),
                    UUID.replace('-', "")
                ),
                "/v3/{id}/volumes/{id}",
            ),
        ] {
            assert_eq!(route(&path), want, "{path}");
        }
    }

    #[test]
    fn query_string_fragment_and_absolute_form_authority_go() {
        assert_eq!(
            route("/v2.0/ports.json?device_id=1&fields=id"),
            "/v2.0/ports.json"
        );
        assert_eq!(
            route(&format!("/v2/images/{UUID}?x=1#top")),
            "/v2/images/{id}"
        );
        assert_eq!(route("/#frag"), "/");
        assert_eq!(
            route(&format!("http://nova:8774/v2.1/servers/{UUID}")),
            "/v2.1/servers/{id}"
        );
        assert_eq!(route("http://nova:8774?x=1"), "/");
        // A query string that holds a URL is not an absolute-form target.
        assert_eq!(route("/redirect?to=http://x/y"), "/redirect");
        // What has no path keeps its form: asterisk-form, CONNECT's authority-form.
        assert_eq!(route("*"), "*");
        assert_eq!(route("keystone:5000"), "keystone:5000");
        assert_eq!(route(""), "");
    }

    #[test]
    fn tokens_are_ids_but_words_and_versions_are_not() {
        let fernet = "gAAAAABl3x9Kq1v_Zt8ePmW2nR7sYc4hJ-oLdF6uXiB0aQ";
        assert_eq!(
            route(&format!("/v2.0/tokens/{fernet}")),
            "/v2.0/tokens/{id}"
        );
        assert_eq!(route("/items/01HGW2M4B7Q9XK3T5V8N0PRZ6C"), "/items/{id}");
        for kept in [
            "/v3/OS-FEDERATION/identity_providers",
            "/v2.1/os-volume_attachments",
            "/v2.1/os-server-external-events",
            "/traits/HW_CPU_X86_AVX512F",
            "/resource_classes/CUSTOM_GPU_NVIDIA_A100",
            "/v2/lbaas/l7policies",
            "/v3/ec2tokens",
            "/v1.0/abc.def",
            "/healthcheck",
            "/v3/users/",
            "/cafe",
        ] {
            assert_eq!(route(kept), kept);
        }
    }

    #[test]
    fn a_route_is_its_own_route() {
        for target in [
            format!("/v2.0/ports/{UUID}.json?fields=id"),
            format!("https://glance/v2/images/{UUID}/file"),
            "/v1/x.tar.gz".to_owned(),
            "/v1/123.tar".to_owned(),
        ] {
            let once = route(&target);
            assert_eq!(route(&once), once, "{target}");
        }
    }
}
