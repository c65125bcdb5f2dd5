"""The curation side of the store: a person's labels and notes on regions, names and notes on
clusters, merges and splits of clusters, and the edit log every such change is written to."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection

from ..errors import ConfigError, NotFound
from . import queries as q
from .base import Connected, clustering_key, edit_row, key_doc
from .rows import REGION_LABELS, ClusterNameRow, EditRow, RegionLabelRow, loads, now_iso, opt_int


class CurationStore(Connected):
    """Region labels and notes, cluster names and notes, merges, splits and the edit log."""

    # ------------------------------------------------------------------ the edit log
    def add_edit(self, *, target: str, target_id: int | None, field: str, old_value: Any = None,
                 new_value: Any = None, author: str | None = None, note: str | None = None) -> int:
        """Log one manual change (values kept as JSON); returns the edit's id."""
        with self._tx(write=True) as c:
            return int(c.execute(q.INSERT_EDIT, edit_row(target, target_id, field, old_value, new_value, author,
                                                         note, now_iso())).scalar_one())

    def edits(self, *, target: str | None = None, target_id: int | None = None) -> list[EditRow]:
        where, p = q.match(target=target, target_id=opt_int(target_id))
        with self._tx() as c:
            rows = c.execute(q.where(q.EDITS_WHERE, where), p).mappings().all()
        return [EditRow(int(r["id"]), r["target"], opt_int(r["target_id"]), r["field"], loads(r["old_value"]),
                        loads(r["new_value"]), r["author"], r["at"], r["note"]) for r in rows]

    # ------------------------------------------------------------------ regions
    def region_label(self, region_id: int) -> RegionLabelRow | None:
        with self._tx() as c:
            r = c.execute(q.SELECT_REGION_LABEL, {"region_id": int(region_id)}).first()
        return None if r is None else RegionLabelRow(int(r[0]), r[1], r[2], r[3], r[4])

    def region_labels(self, *, run_id: int, recording_id: int | None = None) -> dict[int, RegionLabelRow]:
        """Region id -> label row for the labelled regions of a run (or of one recording in it)."""
        p = {"run_id": int(run_id)}
        stmt = q.SELECT_LABELS_OF_RUN
        if recording_id is not None:
            p["recording_id"], stmt = int(recording_id), q.SELECT_LABELS_OF_RECORDING
        with self._tx() as c:
            rows = c.execute(stmt, p).all()
        return {int(r[0]): RegionLabelRow(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows}

    def set_region_label(self, region_id: int, label: str | None, *, author: str | None = None,
                         note: str | None = None) -> RegionLabelRow:
        """Label a region 'vocalisation' or 'noise' (None withdraws the label) and log the change.
        :class:`~sonotype.errors.NotFound` when there is no such region."""
        if label is not None and label not in REGION_LABELS:
            raise ConfigError(f"region label must be one of {list(REGION_LABELS)} or None, got {label!r}")
        return self._set_region_field(region_id, "label", label, author=author, note=note)

    def set_region_note(self, region_id: int, text_: str | None, *, author: str | None = None) -> RegionLabelRow:
        """Attach (or with None clear) a free-text note to a region and log the change."""
        return self._set_region_field(region_id, "note", None if text_ is None else str(text_), author=author)

    def _set_region_field(self, region_id: int, field: str, value: str | None, *, author: str | None,
                          note: str | None = None) -> RegionLabelRow:
        rid, at = int(region_id), now_iso()
        stmt = q.UPSERT_REGION_LABEL if field == "label" else q.UPSERT_REGION_NOTE
        with self._tx(write=True) as c:
            if c.execute(q.SELECT_REGION, {"id": rid}).first() is None:
                raise NotFound(f"{self.label}: region {rid} does not exist; list regions with Store.regions()")
            old = c.execute(q.SELECT_REGION_LABEL, {"region_id": rid}).first()
            c.execute(stmt, {"region_id": rid, "value": value, "author": author, "at": at})
            c.execute(q.INSERT_EDIT, edit_row("region", rid, field, None if old is None else old._mapping[field],
                                              value, author, note, at))
            r = c.execute(q.SELECT_REGION_LABEL, {"region_id": rid}).first()
        return RegionLabelRow(int(r[0]), r[1], r[2], r[3], r[4])

    # ------------------------------------------------------------------ clusters
    def cluster_names(self, run_id: int, algorithm: str, params: dict | None) -> dict[int, ClusterNameRow]:
        """Cluster number -> name/note row for one clustering."""
        key = clustering_key(run_id, algorithm, params)
        with self._tx() as c:
            rows = c.execute(q.SELECT_CLUSTER_NAMES, key).all()
        return {int(r[0]): ClusterNameRow(key["run_id"], key["algorithm"], loads(key["params"]), int(r[0]), r[1],
                                          r[2], r[3], r[4]) for r in rows}

    def set_cluster_name(self, run_id: int, algorithm: str, params: dict | None, cluster: int, name: str | None,
                         *, author: str | None = None) -> ClusterNameRow:
        """Name one cluster of a clustering (None clears the name); the change is logged."""
        return self._set_cluster_field(run_id, algorithm, params, cluster, "name", name, author=author)

    def set_cluster_note(self, run_id: int, algorithm: str, params: dict | None, cluster: int, note: str | None,
                         *, author: str | None = None) -> ClusterNameRow:
        """Attach (None: clear) a free-text note to one cluster of a clustering; the change is logged."""
        return self._set_cluster_field(run_id, algorithm, params, cluster, "note", note, author=author)

    def _set_cluster_field(self, run_id, algorithm, params, cluster, field, value, *, author) -> ClusterNameRow:
        key, at = {**clustering_key(run_id, algorithm, params), "cluster": int(cluster)}, now_iso()
        stmt = q.UPSERT_CLUSTER_NAME if field == "name" else q.UPSERT_CLUSTER_NOTE
        with self._tx(write=True) as c:
            self._members_in(c, key, (key["cluster"],))
            old = {int(r[0]): r for r in c.execute(q.SELECT_CLUSTER_NAMES, key).all()}.get(key["cluster"])
            c.execute(stmt, {**key, "value": value, "author": author, "at": at})
            c.execute(q.INSERT_EDIT, edit_row("cluster", key["run_id"], field,
                                              {**key_doc(key), "value": None if old is None else old._mapping[field]},
                                              {**key_doc(key), "value": value}, author, None, at))
        return self.cluster_names(run_id, algorithm, params)[int(cluster)]

    def merge_clusters(self, run_id: int, algorithm: str, params: dict | None, *, into: int, other: int,
                       author: str | None = None, note: str | None = None) -> int:
        """Move every region of cluster ``other`` into cluster ``into`` (same clustering); logs the change
        with the moved region ids. Returns the number of regions moved."""
        key, into, other = clustering_key(run_id, algorithm, params), int(into), int(other)
        if into == other:
            raise ConfigError(f"cannot merge cluster {into} into itself; choose two different clusters")
        with self._tx(write=True) as c:
            moved = self._members_in(c, key, (into, other))[other]
            c.execute(q.MOVE_CLUSTER, {**key, "into": into, "cluster": other})
            c.execute(q.INSERT_EDIT, edit_row("cluster", key["run_id"], "merge",
                                              {**key_doc(key), "cluster": other, "region_ids": moved},
                                              {**key_doc(key), "cluster": into}, author, note, now_iso()))
        return len(moved)

    def split_cluster(self, run_id: int, algorithm: str, params: dict | None, cluster: int,
                      region_ids: Iterable[int], *, author: str | None = None, note: str | None = None) -> int:
        """Move ``region_ids`` (members of ``cluster``) to a new cluster numbered one above the highest of the
        clustering; logs the change. Returns the new cluster's number."""
        key, cluster = clustering_key(run_id, algorithm, params), int(cluster)
        ids = sorted({int(r) for r in region_ids})
        if not ids:
            raise ConfigError("split needs at least one region id to move to the new cluster; got none")
        with self._tx(write=True) as c:
            members = set(self._members_in(c, key, (cluster,))[cluster])
            strangers = [r for r in ids if r not in members]
            if strangers:
                raise ConfigError(f"region(s) {strangers[:10]} are not in cluster {cluster}; choose members of it")
            new = max(int(c.execute(q.MAX_CLUSTER, key).scalar()) + 1, 0)
            c.execute(q.MOVE_CLUSTER_MEMBER, [{**key, "into": new, "cluster": cluster, "region_id": r} for r in ids])
            c.execute(q.INSERT_EDIT, edit_row("cluster", key["run_id"], "split",
                                              {**key_doc(key), "cluster": cluster, "region_ids": ids},
                                              {**key_doc(key), "cluster": new}, author, note, now_iso()))
        return new

    def _members_in(self, c: Connection, key: dict, clusters: tuple[int, ...]) -> dict[int, list[int]]:
        """Region ids of each of ``clusters``; :class:`NotFound` when one of them has no member."""
        found: dict[int, list[int]] = {cl: [] for cl in clusters}
        for rid, cl in c.execute(q.SELECT_CLUSTER_MEMBERS, key).all():
            if int(cl) in found:
                found[int(cl)].append(int(rid))
        empty = [cl for cl, m in found.items() if not m]
        if empty:
            raise NotFound(f"{self.label}: clustering {key['algorithm']} {key['params']} of run {key['run_id']} "
                           f"has no cluster {empty[0]}; see Store.cluster_members()")
        return found
