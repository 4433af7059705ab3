"""Route profiles: which requests the guard checks, how each becomes `Action`s, and how a refusal is
answered in the platform's own format. The names the rest of the guard imports are re-exported here."""

from guard.core.profiles.model import (
    READ_METHODS,
    Profile,
    ProfileError,
    ProfileSet,
    RequestInfo,
    Route,
    load_profile_file,
    load_profiles,
)

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
