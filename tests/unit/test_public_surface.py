"""The public surface of ``fleet`` is curated and loaded lazily: every exported name must
resolve, or ``api/`` breaks only when it first touches the name."""

import fleet


def test_every_export_resolves() -> None:
    for name in fleet.__all__:
        assert getattr(fleet, name) is not None, name


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        fleet.no_such_thing  # noqa: B018
    except AttributeError:
        pass
    else:
        raise AssertionError("unknown name resolved")
