"""Route profiles: which requests the guard checks, how each becomes `Action`s, and how a refusal is
answered in the platform's own format.

Built in: `wecom` (WeCom server API, paths under /cgi-bin/) and `gewe` (personal-WeChat GeWe API, any path
prefix); their paths do not overlap, both are active. Custom profiles are TOML files in the rules
directory's `profiles/` (docs/profiles.md); they are matched before the built-in ones.

A profile answers `match(method, path)` with a `Route`: a guarded route has a parser turning the JSON body
into one or more Actions (several accounts in one request, e.g. a moment task for many senders); a
pass-through route (read-only and media endpoints) is forwarded without checks.

- `model`: the routing model (Profile, Route, RequestInfo, ProfileSet, answer formats, field shapes);
- `wecom`, `gewe`: one module per platform, its endpoint catalogue as data plus the parsers it names;
- `custom`: the loader of custom profiles and `load_profiles` (custom + built-in).
"""

from guard.core.profiles.custom import ProfileError, load_profile_file, load_profiles
from guard.core.profiles.model import READ_METHODS, Profile, ProfileSet, RequestInfo, Route

__all__ = [
    "READ_METHODS",
    "Profile",
    "ProfileError",
    "ProfileSet",
    "RequestInfo",
    "Route",
    "load_profile_file",
    "load_profiles",
]
