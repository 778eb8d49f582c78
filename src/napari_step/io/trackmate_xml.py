"""TrackMate XML files: the full session file (``<TrackMate>``) and "Export tracks to XML"
(``<Tracks>``).

The file is streamed through expat, keeping only what the tables need. DOCTYPE and ENTITY
declarations are refused outright (TrackMate never writes them), which closes the entity-expansion
and external-entity attacks that ``defusedxml`` guards against without adding a dependency.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path
from xml.parsers import expat

import numpy as np
import pandas as pd

from ._common import (
    META_KEY,
    TrackFileError,
    _apply_pixel_size,
    _coerce,
    _existing,
    _first_line,
    _validated,
)
from ._decode import _empty_check, _read_head

__all__ = ["read_trackmate_xml"]


class _XmlCollector:
    """expat handlers that keep what the two TrackMate XML formats need, nothing else."""

    def __init__(self, name: str):
        self.name = name
        self.kind = None
        self.root_attrs = {}
        self.stack = []
        self.model_attrs = None
        self.image_attrs = {}
        self.spots = []
        self.spot_frames = []
        self.frame = None
        self.track = None
        self.tracks = []  # TRACK_ID of each <Track>, in order
        self.edges = ([], [], [])  # track, source, target
        self.filtered = None
        self.particles = []  # simple format: per particle, a list of detection attrs
        self.has_all_spots = False

    def start(self, tag, attrs):
        parent = self.stack[-1] if self.stack else None
        self.stack.append(tag)
        if self.kind is None:
            if tag == "TrackMate":
                self.kind = "full"
            elif tag in ("Tracks", "root"):
                self.kind = "simple"
            else:
                raise TrackFileError(
                    f"{self.name}: not a TrackMate file (the XML root element is <{tag}>, "
                    f"expected <TrackMate> or <Tracks>)"
                )
            self.root_attrs = attrs
            return
        if self.kind == "simple":
            if tag == "particle":
                self.particles.append([])
            elif tag == "detection":
                if parent != "particle":
                    raise TrackFileError(f"{self.name}: <detection> outside a <particle>")
                self.particles[-1].append(attrs)
            return
        if tag == "Spot" and parent == "SpotsInFrame":
            self.spots.append(attrs)
            self.spot_frames.append(self.frame)
        elif tag == "SpotsInFrame":
            self.frame = attrs.get("frame")
        elif tag == "Edge" and parent == "Track":
            src = attrs.get("SPOT_SOURCE_ID", attrs.get("sourceID"))
            tgt = attrs.get("SPOT_TARGET_ID", attrs.get("targetID"))
            if src is None or tgt is None:
                raise TrackFileError(
                    f"{self.name}: an <Edge> of track {self.track} lacks SPOT_SOURCE_ID or "
                    f"SPOT_TARGET_ID"
                )
            self.edges[0].append(self.track)
            self.edges[1].append(src)
            self.edges[2].append(tgt)
        elif tag == "Track" and parent == "AllTracks":
            self.track = attrs.get("TRACK_ID")
            if self.track is None:
                raise TrackFileError(f"{self.name}: a <Track> has no TRACK_ID attribute")
            self.tracks.append(self.track)
        elif tag == "TrackID" and parent == "FilteredTracks":
            if "TRACK_ID" in attrs:
                self.filtered.append(attrs["TRACK_ID"])
        elif tag == "FilteredTracks":
            self.filtered = []
        elif tag == "AllSpots":
            self.has_all_spots = True
        elif tag == "Model" and parent == "TrackMate":
            self.model_attrs = attrs
        elif tag == "ImageData":
            self.image_attrs = attrs

    def end(self, tag):
        self.stack.pop()


def _refuse_dtd(name):
    def handler(*args):
        raise TrackFileError(
            f"{name}: XML with a DOCTYPE or ENTITY declaration is refused (TrackMate never "
            "writes one, and entities can be used to attack the reader)"
        )

    return handler


def _parse_xml(p: Path) -> _XmlCollector:
    name = p.name
    _empty_check(_read_head(p), name)
    c = _XmlCollector(name)
    parser = expat.ParserCreate()
    parser.StartElementHandler = c.start
    parser.EndElementHandler = c.end
    parser.StartDoctypeDeclHandler = _refuse_dtd(name)
    parser.EntityDeclHandler = _refuse_dtd(name)
    parser.ExternalEntityRefHandler = _refuse_dtd(name)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        with open(p, "rb") as fh:
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except expat.ExpatError as e:
        msg = expat.errors.messages.get(e.code, str(e))
        truncated = {
            expat.errors.codes[k]
            for k in (
                expat.errors.XML_ERROR_NO_ELEMENTS,
                expat.errors.XML_ERROR_UNCLOSED_TOKEN,
                expat.errors.XML_ERROR_PARTIAL_CHAR,
                expat.errors.XML_ERROR_UNCLOSED_CDATA_SECTION,
            )
        }
        if e.code in truncated and c.stack:
            raise TrackFileError(
                f"{name}: the XML ends before <{c.stack[-1]}> is closed (line {e.lineno}): the "
                "file is truncated or incomplete"
            ) from None
        raise TrackFileError(
            f"{name}: not well-formed XML ({msg} at line {e.lineno}, column {e.offset})"
        ) from None
    except OSError as e:
        raise TrackFileError(f"{name}: cannot be read ({e.strerror or e})") from None
    except (ValueError, LookupError, UnicodeError) as e:
        if isinstance(e, TrackFileError):
            raise
        raise TrackFileError(f"{name}: cannot be parsed as XML ({_first_line(e)})") from None
    if c.kind is None:
        raise TrackFileError(f"{name}: holds no XML element")
    return c


def _float_attr(attrs: dict, key: str):
    try:
        v = float(attrs[key])
    except (KeyError, TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _linear_segments(spots, order_key, edges):
    """Cut a branching track into linear pieces; ``edges`` are (earlier, later) spot pairs."""
    succ, pred = defaultdict(list), defaultdict(list)
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)
    segments = []
    for s in sorted(spots, key=order_key):
        ps = pred.get(s, [])
        if len(ps) == 1 and len(succ[ps[0]]) == 1:
            continue  # continues its predecessor's piece
        seg, cur = [s], s
        while len(succ.get(cur, ())) == 1 and len(pred[succ[cur][0]]) == 1:
            cur = succ[cur][0]
            seg.append(cur)
        segments.append(seg)
    return segments


def _full_metadata(c: _XmlCollector) -> dict:
    """Units, TrackMate version and the image's pixel size / frame interval of a session file."""
    meta = {"source_format": "trackmate-xml"}
    for key, attr in (("space_units", "spatialunits"), ("time_units", "timeunits")):
        if c.model_attrs.get(attr):
            meta[key] = c.model_attrs[attr]
    if c.root_attrs.get("version"):
        meta["trackmate_version"] = c.root_attrs["version"]
    for key, attr in (
        ("source_pixel_size", "pixelwidth"),
        ("source_frame_interval", "timeinterval"),
    ):
        v = _float_attr(c.image_attrs, attr)
        if v is not None:
            meta[key] = v
    if c.image_attrs.get("filename"):
        meta["source_image"] = c.image_attrs["filename"]
    return meta


def _spots_table(c: _XmlCollector, name: str) -> pd.DataFrame:
    """Every ``<Spot>`` with its attributes; ID and FRAME whole numbers, positions numbers."""
    if not c.spots:
        raise TrackFileError(f"{name}: the TrackMate file holds no spots")
    spots = pd.DataFrame.from_records(c.spots)
    if "FRAME" not in spots.columns:
        spots["FRAME"] = c.spot_frames
    else:
        spots["FRAME"] = spots["FRAME"].fillna(pd.Series(c.spot_frames, dtype=object))
    for col in ("ID", "POSITION_X", "POSITION_Y"):
        if col not in spots.columns:
            raise TrackFileError(f"{name}: <Spot> elements lack the {col} attribute")
    ids = spots["ID"]

    def spot_label(i):
        return f"spot ID={ids[i]!r}"

    pos = [c_ for c_ in ("POSITION_Z", "POSITION_Y", "POSITION_X") if c_ in spots.columns]
    _coerce(spots, name, ["ID", "FRAME"] + pos, int_columns=["ID", "FRAME"], label=spot_label)
    spots["ID"] = spots["ID"].astype(np.int64)
    spots["FRAME"] = spots["FRAME"].astype(np.int64)
    if spots["ID"].duplicated().any():
        dup = int(spots["ID"][spots["ID"].duplicated()].iloc[0])
        raise TrackFileError(f"{name}: spot ID {dup} appears more than once in <AllSpots>")
    return spots


def _visible_edges(c: _XmlCollector, name: str, frame_of: pd.Series) -> pd.DataFrame:
    """Edges (track, src, tgt) of the visible (filtered) tracks, oriented earlier -> later."""
    edges = pd.DataFrame({"track": c.edges[0], "src": c.edges[1], "tgt": c.edges[2]})
    _coerce(
        edges,
        name,
        ["track", "src", "tgt"],
        int_columns=["track", "src", "tgt"],
        label=lambda i: f"edge {int(i) + 1} (track {c.edges[0][i]!r})",
    )
    edges = edges.astype(np.int64)
    if c.filtered is not None:
        try:
            keep = {int(t) for t in c.filtered}
        except ValueError:
            raise TrackFileError(
                f"{name}: <FilteredTracks> holds a TRACK_ID that is not a whole number"
            ) from None
        edges = edges[edges["track"].isin(keep)]
    if len(edges) == 0:
        raise TrackFileError(
            f"{name}: the TrackMate file holds no (visible) tracks, only "
            f"{len(frame_of)} unlinked spots"
        )
    unknown = ~edges["src"].isin(frame_of.index) | ~edges["tgt"].isin(frame_of.index)
    if unknown.any():
        row = edges[unknown].iloc[0]
        sid = row.src if row.src not in frame_of.index else row.tgt
        raise TrackFileError(
            f"{name}: track {row.track} links spot {sid}, which is not in <AllSpots>"
        )
    a, b = edges["src"].to_numpy(), edges["tgt"].to_numpy()
    fa, fb = frame_of[a].to_numpy(), frame_of[b].to_numpy()
    swap = (fa > fb) | ((fa == fb) & (a > b))
    return pd.DataFrame(
        {
            "track": edges["track"].to_numpy(),
            "src": np.where(swap, b, a),
            "tgt": np.where(swap, a, b),
        }
    )


def _spot_tracks(edges: pd.DataFrame, name: str) -> pd.Series:
    """TrackMate track id of every linked spot (index: spot id)."""
    member = pd.concat(
        [
            edges[["src", "track"]].rename(columns={"src": "spot"}),
            edges[["tgt", "track"]].rename(columns={"tgt": "spot"}),
        ]
    )
    member = member.drop_duplicates()
    if member["spot"].duplicated().any():
        sid = int(member["spot"][member["spot"].duplicated()].iloc[0])
        raise TrackFileError(f"{name}: spot {sid} belongs to more than one track")
    return pd.Series(member["track"].to_numpy(), index=member["spot"].to_numpy())


def _linear_ids(
    c: _XmlCollector, edges: pd.DataFrame, spot_track: pd.Series, frame_of: pd.Series
) -> tuple[pd.Series, int]:
    """New track id of every spot, cutting tracks that split or merge into linear pieces.

    Returns (ids, number of tracks cut). Pieces get ids after every TrackMate id in the file,
    filtered-out tracks included, so they never collide with a kept track.
    """
    new_id = spot_track.copy()
    branching = (edges.groupby("src").size() > 1).reindex(spot_track.index, fill_value=False) | (
        edges.groupby("tgt").size() > 1
    ).reindex(spot_track.index, fill_value=False)
    split_tracks = sorted(set(spot_track[branching[branching].index]))
    if not split_tracks:
        return new_id, 0
    known = pd.to_numeric(pd.Series(c.tracks, dtype=object), errors="coerce")
    next_id = int(max(known.max(), spot_track.max())) + 1
    for t in split_tracks:
        te = edges[edges["track"] == t]
        members = spot_track.index[spot_track.to_numpy() == t]
        for seg in _linear_segments(members, lambda s: (frame_of[s], s), zip(te["src"], te["tgt"])):
            new_id[seg] = next_id
            next_id += 1
    return new_id, len(split_tracks)


def _table_from_full_xml(c: _XmlCollector, name: str) -> tuple[pd.DataFrame, dict]:
    """(table, metadata) of a TrackMate session file: the spots of its visible tracks."""
    if c.model_attrs is None or not c.has_all_spots:
        raise TrackFileError(
            f"{name}: this TrackMate XML has no <Model> with <AllSpots> (is it a settings-only "
            "file?)"
        )
    meta = _full_metadata(c)
    spots = _spots_table(c, name)
    frame_of = pd.Series(spots["FRAME"].to_numpy(), index=spots["ID"].to_numpy())
    edges = _visible_edges(c, name, frame_of)
    spot_track = _spot_tracks(edges, name)
    new_id, n_split = _linear_ids(c, edges, spot_track, frame_of)
    if n_split:
        meta["split_tracks"] = n_split

    table = spots[spots["ID"].isin(spot_track.index)].copy()
    table.insert(0, "track_id", new_id[table["ID"].to_numpy()].to_numpy())
    table["trackmate_track_id"] = spot_track[table["ID"].to_numpy()].to_numpy()
    table = table.rename(
        columns={
            "FRAME": "frame",
            "POSITION_X": "x",
            "POSITION_Y": "y",
            "POSITION_Z": "z",
            "ID": "spot_id",
            "name": "LABEL",
        }
    )
    for col in table.columns:  # other spot features: numbers where they all parse
        if table[col].dtype == object or pd.api.types.is_string_dtype(table[col]):
            conv = pd.to_numeric(table[col], errors="coerce")
            if not (conv.isna() & table[col].notna()).any():
                table[col] = conv
    return table, meta


def _table_from_simple_xml(c: _XmlCollector, name: str) -> tuple[pd.DataFrame, dict]:
    meta = {"source_format": "trackmate-tracks-xml"}
    for key, attr in (("space_units", "spaceUnits"), ("time_units", "timeUnits")):
        if c.root_attrs.get(attr):
            meta[key] = c.root_attrs[attr]
    v = _float_attr(c.root_attrs, "frameInterval")
    if v is not None:
        meta["source_frame_interval"] = v
    if c.root_attrs.get("from"):
        meta["trackmate_version"] = c.root_attrs["from"]
    if not c.particles:
        raise TrackFileError(f"{name}: holds no <particle> (track) elements")
    tid = np.repeat(np.arange(len(c.particles)), [len(d) for d in c.particles])
    rows = [d for det in c.particles for d in det]
    if not rows:
        raise TrackFileError(f"{name}: its <particle> elements hold no <detection>")
    table = pd.DataFrame.from_records(rows)
    missing = [a for a in ("t", "x", "y") if a not in table.columns]
    if missing:
        raise TrackFileError(f"{name}: <detection> elements lack attribute(s) {missing}")
    particle = tid

    def det_label(i):
        return f"detection {int(i) + 1} (particle {int(particle[i])})"

    pos = [a for a in ("z", "y", "x") if a in table.columns]
    _coerce(table, name, ["t"] + pos, int_columns=["t"], label=det_label)
    table = table.rename(columns={"t": "frame"})
    table.insert(0, "track_id", tid)
    return table, meta


def read_trackmate_xml(path: str | os.PathLike, pixel_size: float | None = None) -> pd.DataFrame:
    """Read a TrackMate XML: a full session file (``<TrackMate>``) or "Export tracks to XML".

    From a session file: the spots of the visible tracks (``<FilteredTracks>``) with all their
    features (ID -> spot_id, name -> LABEL, FRAME -> frame, POSITION_X/Y/Z -> x/y/z, z dropped
    when all zero); a track that splits or merges is cut into linear pieces, each with a new
    ``track_id`` (``trackmate_track_id`` keeps TrackMate's id). From a simple tracks file:
    track_id is the particle's position in the file.

    Parameters
    ----------
    path : str or path-like
        The XML file (DOCTYPE/ENTITY declarations are refused).
    pixel_size : float, optional
        Size of a pixel in the file's space unit (e.g. um): converts positions to pixels.

    Returns
    -------
    pandas.DataFrame
        Track table; units, the image's pixel size and frame interval go into
        ``attrs["napari_step"]``.
    """
    p = _existing(path)
    name = p.name
    c = _parse_xml(p)
    if c.kind == "full":
        table, meta = _table_from_full_xml(c, name)
    else:
        table, meta = _table_from_simple_xml(c, name)
    if "z" in table.columns and (table["z"].fillna(0) == 0).all():
        table = table.drop(columns="z")
    _apply_pixel_size(table, meta, pixel_size, name, assume_physical=True)
    out = _validated(table, name)
    out.attrs[META_KEY] = meta
    return out
