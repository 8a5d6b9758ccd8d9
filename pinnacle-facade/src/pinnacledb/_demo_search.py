"""``pinnacle demo --search``: similarity search end to end, with no model download.

1. a ``demo_docs`` table of short help-desk texts is created and filled;
2. a listener embeds each text with :class:`~pinnacledb.components.HashingTextEncoder` (numpy,
   hashed words and character trigrams);
3. a ``VectorIndex`` over the listener's outputs is applied: built, stored in the artifact
   store with a pointer in the metadata store;
4. searches by raw text (the listener's model embeds the query), with and without ``where``;
5. an inserted document is found by the next search (the listener keeps the index current),
   then deleted again;
6. a second Datalayer (what a fresh process does) searches the stored build without rebuilding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from pinnacledb.base.datalayer import Datalayer

__all__ = ["DOCS", "SEARCH_INDEX", "SEARCH_TABLE", "run_search_demo"]

SEARCH_TABLE = "demo_docs"
SEARCH_INDEX = "demo-docs-idx"
DOCS: tuple[tuple[str, str], ...] = (
    ("account", "How do I reset my password if I forgot it?"),
    ("account", "Change the email address on my account"),
    ("account", "Enable two-factor authentication with an authenticator app"),
    ("account", "My account is locked after too many login attempts"),
    ("account", "Delete my account and all my data"),
    ("billing", "Update the credit card used for my subscription"),
    ("billing", "Download an invoice for last month's payment"),
    ("billing", "Why was I charged twice this month?"),
    ("billing", "Cancel my subscription and get a refund"),
    ("billing", "Switch from monthly to yearly billing"),
    ("shipping", "Track the delivery status of my order"),
    ("shipping", "My package arrived damaged, what now?"),
    ("shipping", "Change the shipping address of an order already placed"),
    ("shipping", "Which countries do you ship to?"),
    ("product", "The mobile app crashes when I open settings"),
    ("product", "Export my data as a CSV file"),
    ("product", "Dark mode for the web interface"),
    ("product", "Sync my notes between phone and laptop"),
)


def _show(out: TextIO, hits: list[Any]) -> None:
    for h in hits:
        out.write(f"    {h.score:+.3f}  [{h['topic']}] {h['text']}\n")


def run_search_demo(db: Datalayer, out: TextIO) -> int:
    """Run the search demo on ``db`` and narrate it on ``out``; return the exit status."""
    from pinnacledb._wiring import pinnacle
    from pinnacledb.components import HashingTextEncoder, Listener, Table, VectorIndex

    out.write(f"pinnacledb search demo on these stores (passwords redacted):\n{db!r}\n\n")
    db.apply(Table.of(SEARCH_TABLE, id="int", topic="str", text="str"))
    if db.count(SEARCH_TABLE) == 0:
        db.insert(
            SEARCH_TABLE,
            [{"id": i, "topic": t, "text": x} for i, (t, x) in enumerate(DOCS, 1)],
        )
    out.write(f"1. table {SEARCH_TABLE!r}: {db.count(SEARCH_TABLE)} help-desk texts\n")

    encoder = HashingTextEncoder(identifier="demo-text-encoder", dim=256)
    listener = Listener(
        identifier="demo-docs-embedding",
        model=encoder,
        table=SEARCH_TABLE,
        inputs="text",
        output_type="vector",
    )
    index = VectorIndex(identifier=SEARCH_INDEX, listener=listener, measure="cosine")
    db.apply(index)
    ptr = db._vectors.pointer(SEARCH_INDEX)
    assert ptr is not None
    out.write(
        f"2. listener {listener.identifier!r} embeds each text ({encoder.dim} floats, hashed "
        f"words and trigrams, no download) into {listener.output_table!r}\n"
        f"3. vector index {SEARCH_INDEX!r} v{index.version} (cosine, exact engine): "
        f"{ptr.count} vectors, stored build "
        f"{'-' if ptr.artifact is None else ptr.artifact.sha256[:12]} in the artifact store, "
        f"pointer in the metadata store\n"
    )

    query = "I forgot my password"
    out.write(f"4. db.search({SEARCH_INDEX!r}, like={query!r}, n=3):\n")
    _show(out, db.search(SEARCH_INDEX, like=query, n=3))
    query = "refund for a double charge"
    out.write(f"   ... like={query!r}, n=3, where={{'topic': 'billing'}}:\n")
    _show(out, db.search(SEARCH_INDEX, like=query, n=3, where={"topic": "billing"}))

    new = {"id": 1000, "topic": "account", "text": "Password reset email never arrives"}
    db.insert(SEARCH_TABLE, [new])
    top = db.search(SEARCH_INDEX, like="password reset email", n=1)
    out.write(f"5. inserted {new['text']!r}; the next search finds it first:\n")
    _show(out, top)
    db.delete(SEARCH_TABLE, {"id": new["id"]})
    gone = all(h.id != new["id"] for h in db.search(SEARCH_INDEX, like=new["text"], n=5))
    out.write(f"   deleted it again: {'gone from the index' if gone else 'STILL FOUND'}\n")

    other = pinnacle(db.databackend, metadata_store=db.metadata, artifact_store=db.artifact_store)
    again = other.search(SEARCH_INDEX, like="forgot my password", n=1)
    stored = db._vectors.pointer(SEARCH_INDEX)
    changes = 0 if stored is None else len(stored.deltas)
    out.write(
        "6. a second Datalayer (as a fresh process would) reads the stored build and the "
        f"{changes} change files the insert and delete stored, and searches without "
        "rebuilding:\n"
    )
    _show(out, again)
    out.write(
        "\nTo use a real embedding model, give the listener any Model whose predict method "
        "returns one vector per text (see the README, 'Vector indexes and similarity search').\n"
    )
    return 0 if gone and top and top[0].id == new["id"] else 1
