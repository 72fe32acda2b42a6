"""The cost directives of the schema (`@cost`, `@listSize`), read by graph/pipeline/cost.py."""

from strawberry.federation.schema_directives import Cost, ListSize

__all__ = ["Cost", "assumed", "paged", "sliced"]


def paged(assumed_size: int) -> ListSize:
    """A field that returns a connection: its page size sizes the connection's items."""
    return ListSize(
        slicing_arguments=["first", "last"],
        sized_fields=["nodes", "edges"],
        assumed_size=assumed_size,  # the default page size
        require_one_slicing_argument=False,
    )


def assumed(size: int) -> ListSize:
    """A list field with no slicing argument: about `size` items."""
    return ListSize(assumed_size=size, require_one_slicing_argument=False)  # type: ignore[call-arg]


def sliced() -> ListSize:
    """A list field sized by its `first` argument (which has a default)."""
    return ListSize(slicing_arguments=["first"], require_one_slicing_argument=False)  # type: ignore[call-arg]
