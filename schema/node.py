"""The Relay `Node` interface and opaque global IDs (base64 of type name and key)."""

import base64
import binascii

import strawberry
from strawberry.types.base import get_object_definition


@strawberry.interface(description="An object with a globally unique, opaque ID.")
class Node:
    @strawberry.field(
        description="Opaque global ID; pass it to `Query.node` to fetch the object again."
    )
    def id(self) -> strawberry.ID:  # built when asked: most selections never ask
        # the GraphQL type's name, as `key_in` reads it back, whatever the Python class is called
        return to_global_id(get_object_definition(self, strict=True).name, self.node_key())

    def node_key(self) -> str:
        """The key the global ID carries (accession number, CIK)."""
        raise NotImplementedError


def to_global_id(type_name: str, key: str) -> strawberry.ID:
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode())


def from_global_id(global_id: str) -> tuple[str, str] | None:
    try:
        decoded = base64.urlsafe_b64decode(global_id.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    type_name, separator, key = decoded.partition(":")
    return (type_name, key) if separator and key else None


def key_in(global_id: str, type_name: str) -> str | None:
    """The key inside `global_id` if it is an ID of `type_name`, else None."""
    decoded = from_global_id(global_id)
    return decoded[1] if decoded is not None and decoded[0] == type_name else None
