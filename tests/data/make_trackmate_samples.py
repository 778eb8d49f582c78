"""Regenerate the small TrackMate sample files used by tests/test_io.py.

Run from the repository root: ``python tests/data/make_trackmate_samples.py``. The files mimic
what TrackMate 7.11 writes (checked against its sources: TablePanel.exportToCsv for the spots CSV,
TmXmlWriter/TmXmlKeys for the session XML, ExportTracksToXML for the simple tracks XML):

* ``trackmate_spots.csv`` - "All spots" table export: header of feature keys, then the long
  names, short names and "(units)" rows, no quoting, ints for ID/TRACK_ID/FRAME/VISIBILITY,
  Java ``Double.toString`` for the rest, empty TRACK_ID for spots in no track;
* ``trackmate_session.xml`` - a full session file (Log, Model with feature declarations,
  AllSpots, AllTracks, FilteredTracks, Settings, GUIState, DisplaySettings) whose track 2
  splits, track 3 is filtered out and one edge is stored later -> earlier;
* ``trackmate_tracks.xml`` - "Export tracks to XML file" of the linear visible tracks.

Image calibration: 0.1 micron pixels, 0.05 s frames, 2-D (POSITION_Z = 0).
"""

from pathlib import Path

HERE = Path(__file__).parent
PIXEL = 0.1
DT = 0.05


def jd(x: float) -> str:
    """Java's Double.toString: plain decimal in [1e-3, 1e7), else "1.25E-4" style."""
    x = float(x)
    if x == 0:
        return "0.0"
    if 1e-3 <= abs(x) < 1e7:
        r = repr(x)
        return r if "." in r else r + ".0"
    digits = next(d for d in range(17) if float(f"{x:.{d}e}") == x)
    mant, exp = f"{x:.{digits}e}".split("e")
    return f"{mant if '.' in mant else mant + '.0'}E{int(exp)}"


# spot: (ID, track or None, frame, x, y) - positions in micron
SPOTS = [
    # track 0: frames 0-5, linear
    (1000, 0, 0, 1.2345, 2.3456),
    (1001, 0, 1, 1.2811, 2.3129),
    (1002, 0, 2, 1.3102, 2.2874),
    (1003, 0, 3, 1.2977, 2.2512),
    (1004, 0, 4, 1.3350, 2.2601),
    (1005, 0, 5, 1.3721, 2.2333),
    # track 1: frames 0, 1, 3, 4 (gap closed over frame 2)
    (1100, 1, 0, 4.5012, 0.8765),
    (1101, 1, 1, 4.4620, 0.9511),
    (1103, 1, 3, 4.3987, 1.0342),
    (1104, 1, 4, 4.4410, 1.1207),
    # track 2: frames 0-2, then splits into two branches (frames 3-4)
    (1200, 2, 0, 3.0001, 3.5002),
    (1201, 2, 1, 3.0405, 3.4811),
    (1202, 2, 2, 3.0852, 3.5230),
    (1210, 2, 3, 3.0120, 3.5611),
    (1211, 2, 4, 2.9877, 3.5990),
    (1220, 2, 3, 3.1611, 3.4903),
    (1221, 2, 4, 3.2003, 3.4712),
    # track 3: filtered out (e.g. by a track-length filter): two spots
    (1300, 3, 2, 0.5010, 0.4980),
    (1301, 3, 3, 0.5133, 0.5102),
    # spots in no track
    (1400, None, 1, 5.9001, 5.8002),
    (1401, None, 4, 0.1002, 5.5503),
]
EDGES = {  # track -> (source, target); 1203 -> reversed edge stored later -> earlier
    0: [(1000, 1001), (1001, 1002), (1002, 1003), (1003, 1004), (1004, 1005)],
    1: [(1100, 1101), (1103, 1101), (1103, 1104)],
    2: [(1200, 1201), (1201, 1202), (1202, 1210), (1210, 1211), (1202, 1220), (1220, 1221)],
    3: [(1300, 1301)],
}
VISIBLE_TRACKS = [0, 1, 2]


def features(sid, frame):
    """Deterministic, plausible intensity features of a spot."""
    k = sid % 97
    mean = 180.0 + 3.5 * k + 0.25 * frame
    return {
        "QUALITY": 40.0 + 0.37 * k,
        "MEAN_INTENSITY_CH1": mean,
        "MEDIAN_INTENSITY_CH1": float(round(mean - 2)),
        "MIN_INTENSITY_CH1": 101.0,
        "MAX_INTENSITY_CH1": float(round(mean * 1.9)),
        "TOTAL_INTENSITY_CH1": float(round(mean * 13)),
        "STD_INTENSITY_CH1": 20.0 + 0.11 * k,
        "CONTRAST_CH1": 0.31 + 0.001 * k,
        "SNR_CH1": 2.5 + 0.01 * k,
    }


def write_csv():
    cols = [
        "LABEL",
        "ID",
        "TRACK_ID",
        "QUALITY",
        "POSITION_X",
        "POSITION_Y",
        "POSITION_Z",
        "POSITION_T",
        "FRAME",
        "RADIUS",
        "VISIBILITY",
        "MANUAL_SPOT_COLOR",
        "MEAN_INTENSITY_CH1",
        "MEDIAN_INTENSITY_CH1",
        "MIN_INTENSITY_CH1",
        "MAX_INTENSITY_CH1",
        "TOTAL_INTENSITY_CH1",
        "STD_INTENSITY_CH1",
        "CONTRAST_CH1",
        "SNR_CH1",
    ]
    names = [
        "Label",
        "Spot ID",
        "Track ID",
        "Quality",
        "X",
        "Y",
        "Z",
        "T",
        "Frame",
        "Radius",
        "Visibility",
        "Manual spot color",
        "Mean intensity ch1",
        "Median intensity ch1",
        "Min intensity ch1",
        "Max intensity ch1",
        "Sum intensity ch1",
        "Std intensity ch1",
        "Contrast ch1",
        "Signal/Noise ratio ch1",
    ]
    short = [
        "Label",
        "Spot ID",
        "Track ID",
        "Quality",
        "X",
        "Y",
        "Z",
        "T",
        "Frame",
        "R",
        "Visibility",
        "Spot color",
        "Mean ch1",
        "Median ch1",
        "Min ch1",
        "Max ch1",
        "Sum ch1",
        "Std ch1",
        "Ctrst ch1",
        "SNR ch1",
    ]
    units = [
        "",
        "",
        "",
        "(quality)",
        "(micron)",
        "(micron)",
        "(micron)",
        "(sec)",
        "",
        "(micron)",
        "",
        "",
        "(counts)",
        "(counts)",
        "(counts)",
        "(counts)",
        "(counts)",
        "(counts)",
        "",
        "",
    ]
    lines = [",".join(cols), ",".join(names), ",".join(short), ",".join(units)]
    # the "All spots" table lists the visible spots frame by frame; no split track here
    # (the spots CSV cannot represent one) and no filtered-out track
    rows = [s for s in SPOTS if s[1] in (0, 1, None)]
    rows.sort(key=lambda s: (s[2], s[0]))
    for sid, track, frame, x, y in rows:
        f = features(sid, frame)
        colour = "r=255;g=0;b=255" if sid == 1003 else ""
        lines.append(
            ",".join(
                [
                    f"ID{sid}",
                    str(sid),
                    "" if track is None else str(track),
                    jd(f["QUALITY"]),
                    jd(x),
                    jd(y),
                    "0.0",
                    jd(frame * DT),
                    str(frame),
                    "0.25",
                    "1",
                    colour,
                    jd(f["MEAN_INTENSITY_CH1"]),
                    jd(f["MEDIAN_INTENSITY_CH1"]),
                    jd(f["MIN_INTENSITY_CH1"]),
                    jd(f["MAX_INTENSITY_CH1"]),
                    jd(f["TOTAL_INTENSITY_CH1"]),
                    jd(f["STD_INTENSITY_CH1"]),
                    jd(f["CONTRAST_CH1"]),
                    jd(f["SNR_CH1"]),
                ]
            )
        )
    (HERE / "trackmate_spots.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


SPOT_FEATURES = [  # feature, name, shortname, dimension, isint
    ("QUALITY", "Quality", "Quality", "QUALITY", "false"),
    ("POSITION_X", "X", "X", "POSITION", "false"),
    ("POSITION_Y", "Y", "Y", "POSITION", "false"),
    ("POSITION_Z", "Z", "Z", "POSITION", "false"),
    ("POSITION_T", "T", "T", "TIME", "false"),
    ("FRAME", "Frame", "Frame", "NONE", "true"),
    ("RADIUS", "Radius", "R", "LENGTH", "false"),
    ("VISIBILITY", "Visibility", "Visibility", "NONE", "true"),
    ("MANUAL_SPOT_COLOR", "Manual spot color", "Spot color", "NONE", "true"),
    ("MEAN_INTENSITY_CH1", "Mean intensity ch1", "Mean ch1", "INTENSITY", "false"),
    ("MEDIAN_INTENSITY_CH1", "Median intensity ch1", "Median ch1", "INTENSITY", "false"),
    ("MIN_INTENSITY_CH1", "Min intensity ch1", "Min ch1", "INTENSITY", "false"),
    ("MAX_INTENSITY_CH1", "Max intensity ch1", "Max ch1", "INTENSITY", "false"),
    ("TOTAL_INTENSITY_CH1", "Sum intensity ch1", "Sum ch1", "INTENSITY", "false"),
    ("STD_INTENSITY_CH1", "Std intensity ch1", "Std ch1", "INTENSITY", "false"),
    ("CONTRAST_CH1", "Contrast ch1", "Ctrst ch1", "NONE", "false"),
    ("SNR_CH1", "Signal/Noise ratio ch1", "SNR ch1", "NONE", "false"),
]


def write_session_xml():
    by_id = {s[0]: s for s in SPOTS}
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<TrackMate version="7.11.1">',
        "  <Log>TrackMate v7.11.1 started on:",
        "2024-03-14 10:21:07",
        "Image region of interest:",
        "Image data: sample_movie.tif",
        "Starting detection process using 4 threads.",
        "Found 21 spots.",
        "Starting tracking process.",
        "Tracking done in 0.1 s.",
        "</Log>",
        '  <Model spatialunits="micron" timeunits="sec">',
        "    <FeatureDeclarations>",
        "      <SpotFeatures>",
    ]
    for feat, nm, sh, dim, isint in SPOT_FEATURES:
        out.append(
            f'        <Feature feature="{feat}" name="{nm}" shortname="{sh}" '
            f'dimension="{dim}" isint="{isint}" />'
        )
    out += [
        "      </SpotFeatures>",
        "      <EdgeFeatures>",
        '        <Feature feature="SPOT_SOURCE_ID" name="Source spot ID" '
        'shortname="Source ID" dimension="NONE" isint="true" />',
        '        <Feature feature="SPOT_TARGET_ID" name="Target spot ID" '
        'shortname="Target ID" dimension="NONE" isint="true" />',
        '        <Feature feature="LINK_COST" name="Edge cost" shortname="Cost" '
        'dimension="COST" isint="false" />',
        '        <Feature feature="EDGE_TIME" name="Edge time" shortname="Edge T" '
        'dimension="TIME" isint="false" />',
        "      </EdgeFeatures>",
        "      <TrackFeatures>",
        '        <Feature feature="TRACK_INDEX" name="Track index" shortname="Index" '
        'dimension="NONE" isint="true" />',
        '        <Feature feature="TRACK_ID" name="Track ID" shortname="ID" '
        'dimension="NONE" isint="true" />',
        '        <Feature feature="NUMBER_SPOTS" name="Number of spots in track" '
        'shortname="N spots" dimension="NONE" isint="true" />',
        '        <Feature feature="NUMBER_SPLITS" name="Number of split events" '
        'shortname="N splits" dimension="NONE" isint="true" />',
        "      </TrackFeatures>",
        "    </FeatureDeclarations>",
        f'    <AllSpots nspots="{len(SPOTS)}">',
    ]
    for frame in range(6):
        out.append(f'      <SpotsInFrame frame="{frame}">')
        for sid, track, fr, x, y in sorted(s for s in SPOTS if s[2] == frame):
            f = features(sid, fr)
            out.append(
                f'        <Spot ID="{sid}" name="ID{sid}" STD_INTENSITY_CH1="'
                f'{jd(f["STD_INTENSITY_CH1"])}" QUALITY="{jd(f["QUALITY"])}" POSITION_T="'
                f'{jd(fr * DT)}" TOTAL_INTENSITY_CH1="{jd(f["TOTAL_INTENSITY_CH1"])}" '
                f'CONTRAST_CH1="{jd(f["CONTRAST_CH1"])}" FRAME="{fr}" '
                f'MEDIAN_INTENSITY_CH1="{jd(f["MEDIAN_INTENSITY_CH1"])}" VISIBILITY="1" '
                f'RADIUS="0.25" MIN_INTENSITY_CH1="{jd(f["MIN_INTENSITY_CH1"])}" '
                f'POSITION_X="{jd(x)}" POSITION_Y="{jd(y)}" '
                f'MEAN_INTENSITY_CH1="{jd(f["MEAN_INTENSITY_CH1"])}" '
                f'MAX_INTENSITY_CH1="{jd(f["MAX_INTENSITY_CH1"])}" POSITION_Z="0.0" '
                f'SNR_CH1="{jd(f["SNR_CH1"])}" />'
            )
        out.append("      </SpotsInFrame>")
    out += ["    </AllSpots>", "    <AllTracks>"]
    for index, (track, edges) in enumerate(EDGES.items()):
        spots = sorted({s for e in edges for s in e}, key=lambda s: by_id[s][2])
        frames = [by_id[s][2] for s in spots]
        out.append(
            f'      <Track name="Track_{track}" TRACK_ID="{track}" TRACK_INDEX="{index}" '
            f'NUMBER_SPOTS="{len(spots)}" NUMBER_GAPS="{int(track == 1)}" '
            f'NUMBER_SPLITS="{int(track == 2)}" NUMBER_MERGES="0" NUMBER_COMPLEX="0" '
            f'TRACK_DURATION="{jd((max(frames) - min(frames)) * DT)}" '
            f'TRACK_START="{jd(min(frames) * DT)}" TRACK_STOP="{jd(max(frames) * DT)}">'
        )
        for a, b in edges:
            ta, tb = by_id[a][2], by_id[b][2]
            out.append(
                f'        <Edge SPOT_SOURCE_ID="{a}" SPOT_TARGET_ID="{b}" LINK_COST="'
                f'{jd(0.01 * (a % 7 + 1))}" EDGE_TIME="{jd((ta + tb) / 2 * DT)}" />'
            )
        out.append("      </Track>")
    out += ["    </AllTracks>", "    <FilteredTracks>"]
    out += [f'      <TrackID TRACK_ID="{t}" />' for t in VISIBLE_TRACKS]
    out += [
        "    </FilteredTracks>",
        "  </Model>",
        "  <Settings>",
        f'    <ImageData filename="sample_movie.tif" folder="/data/spt/" width="64" '
        f'height="64" nslices="1" nframes="6" pixelwidth="{jd(PIXEL)}" '
        f'pixelheight="{jd(PIXEL)}" voxeldepth="1.0" timeinterval="{jd(DT)}" />',
        '    <BasicSettings xstart="0" xend="63" ystart="0" yend="63" zstart="0" zend="0" '
        'tstart="0" tend="5" />',
        '    <DetectorSettings DETECTOR_NAME="LOG_DETECTOR" TARGET_CHANNEL="1" '
        'RADIUS="0.25" THRESHOLD="30.0" DO_MEDIAN_FILTERING="false" '
        'DO_SUBPIXEL_LOCALIZATION="true" />',
        '    <InitialSpotFilter feature="QUALITY" value="0.0" isabove="true" />',
        "    <SpotFilterCollection />",
        '    <TrackerSettings TRACKER_NAME="SPARSE_LAP_TRACKER" CUTOFF_PERCENTILE="0.9" '
        'ALTERNATIVE_LINKING_COST_FACTOR="1.05" BLOCKING_VALUE="Infinity">',
        '      <Linking LINKING_MAX_DISTANCE="0.5" />',
        '      <GapClosing ALLOW_GAP_CLOSING="true" GAP_CLOSING_MAX_DISTANCE="0.5" '
        'MAX_FRAME_GAP="2" />',
        '      <TrackSplitting ALLOW_TRACK_SPLITTING="true" SPLITTING_MAX_DISTANCE="0.5" />',
        '      <TrackMerging ALLOW_TRACK_MERGING="false" MERGING_MAX_DISTANCE="0.5" />',
        "    </TrackerSettings>",
        "    <TrackFilterCollection>",
        '      <Filter feature="NUMBER_SPOTS" value="3.0" isabove="true" />',
        "    </TrackFilterCollection>",
        "    <AnalyzerCollection>",
        "      <SpotAnalyzers>",
        '        <Analyzer key="Manual spot color" />',
        '        <Analyzer key="Spot intensity" />',
        '        <Analyzer key="Spot contrast and SNR" />',
        "      </SpotAnalyzers>",
        "      <EdgeAnalyzers>",
        '        <Analyzer key="Directional change" />',
        '        <Analyzer key="Edge target" />',
        "      </EdgeAnalyzers>",
        "      <TrackAnalyzers>",
        '        <Analyzer key="Branching analyzer" />',
        '        <Analyzer key="Track duration" />',
        '        <Analyzer key="Track index" />',
        "      </TrackAnalyzers>",
        "    </AnalyzerCollection>",
        "  </Settings>",
        '  <GUIState state="ConfigureViews" />',
        "  <DisplaySettings>{",
        '  "name": "CurrentDisplaySettings",',
        '  "spotUniformColor": "204, 51, 204, 255",',
        '  "trackDisplayMode": "FULL"',
        "}</DisplaySettings>",
        "</TrackMate>",
    ]
    (HERE / "trackmate_session.xml").write_text("\n".join(out) + "\n", encoding="utf-8")


def write_tracks_xml():
    visible_linear = [0, 1]
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<Tracks nTracks="{len(visible_linear)}" spaceUnits="micron" '
        f'frameInterval="{jd(DT)}" timeUnits="sec" generationDateTime="Thu, 14 Mar 2024 '
        '10:25:31" from="TrackMate v7.11.1">',
    ]
    for track in visible_linear:
        spots = sorted((s for s in SPOTS if s[1] == track), key=lambda s: s[2])
        out.append(f'  <particle nSpots="{len(spots)}">')
        for sid, _, frame, x, y in spots:
            out.append(f'    <detection t="{frame}" x="{jd(x)}" y="{jd(y)}" z="0.0" />')
        out.append("  </particle>")
    out.append("</Tracks>")
    (HERE / "trackmate_tracks.xml").write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_csv()
    write_session_xml()
    write_tracks_xml()
