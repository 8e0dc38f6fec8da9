"""3D meshes: loaded with trimesh, rendered to shaded colour views by a small numpy rasterizer.

The rasterizer is written here because no maintained library renders headless on a CPU without
OpenGL: pyrender needs OSMesa/EGL, trimesh's own renderer needs a window. It draws triangles with
a z-buffer, flat Lambert shading (a light above-left of the camera plus ambient light, both sides
of each face lit) and the mesh's own colours: texture (UV, nearest texel, glTF
``baseColorFactor`` applied), vertex colours (interpolated perspective-correctly), face colours,
or grey. Everything is float64 numpy with fixed tie-breaking, so a render is byte-identical on
every run.

Rendering work is bounded before it starts. A mesh of more than :data:`SIMPLIFY_ABOVE`
triangles (more than the pixels of a few views) is first simplified by vertex clustering: its
vertices are merged per cell of a grid over its bounding box — positions and colours averaged,
textures sampled at the vertices — with the grid as fine as the triangle budget allows. This is
done here in numpy rather than with trimesh's quadric decimation, which needs the optional
``fast_simplification`` package and would make renders depend on what is installed. Then the
pixel-triangle tests all views need (each triangle's screen box) must be within
``max_mesh_render_work``, and rendering stops with an error past ``max_mesh_seconds``.
"""

from __future__ import annotations

import json
import math
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from omnirm.errors import MediaError
from omnirm.media.limits import DEFAULT_LIMITS, MediaLimits, check_file

if TYPE_CHECKING:
    import trimesh

#: Formats :func:`load_mesh` opens (by file extension).
MESH_FORMATS: tuple[str, ...] = ("glb", "gltf", "obj", "ply", "stl", "off")

_GREY = np.array([0.72, 0.72, 0.72])
_AMBIENT = 0.35
_CANDIDATES_PER_CHUNK = 1 << 20  # pixel-triangle pairs tested at once (bounds memory)
_EDGE_TOLERANCE = 1e-9  # pixel centres this close outside an edge count as inside (no cracks)
#: Meshes with more triangles are simplified to this many before rendering.
SIMPLIFY_ABOVE = 200_000


@dataclass(frozen=True)
class MeshInfo:
    """A mesh file's format and triangle count (from the header where the format has one)."""

    format: str
    faces: int


def mesh_info(path: str | Path, limits: MediaLimits = DEFAULT_LIMITS) -> MeshInfo:
    """Count a mesh's triangles and check the face limit, from the header for binary STL, PLY,
    glb and glTF (nothing else is read); other formats have no header and are loaded."""
    path = check_file(path, limits)
    kind = _format_of(path)
    faces = _header_faces(path, kind)
    if faces is None:
        faces = sum(len(mesh.faces) for mesh in _load_parts(path, limits))
    limits.enforce("max_mesh_faces", faces, "mesh has {} faces", path)
    if faces == 0:
        raise MediaError("mesh has no faces", path=str(path))
    return MeshInfo(kind, faces)


def load_mesh(path: str | Path, limits: MediaLimits = DEFAULT_LIMITS) -> trimesh.Trimesh:
    """Load a mesh file as one Trimesh: a scene's geometries are placed by their transforms and
    concatenated (textures are kept when every part is textured; with mixed parts, textures are
    baked to colours so that no part loses its colour)."""
    import trimesh
    from trimesh.visual import TextureVisuals

    parts = _load_parts(path, limits)
    if len(parts) == 1:
        return parts[0]
    textured = [isinstance(part.visual, TextureVisuals) for part in parts]
    if any(textured) and not all(textured):
        for part in parts:
            if isinstance(part.visual, TextureVisuals):
                part.visual = part.visual.to_color()
    combined = trimesh.util.concatenate(parts)
    assert isinstance(combined, trimesh.Trimesh)
    return combined


def render_views(
    mesh: trimesh.Trimesh | trimesh.Scene | str | Path,
    *,
    views: int = 4,
    size: int = 256,
    elevation: float = 20.0,
    tile: bool = True,
    background: tuple[int, int, int] = (255, 255, 255),
    projection: Literal["perspective", "orthographic"] = "perspective",
    limits: MediaLimits = DEFAULT_LIMITS,
) -> Image.Image | list[Image.Image]:
    """Render ``views`` shaded colour views of a mesh (or a mesh file, or a scene).

    The mesh is centred and scaled to the unit sphere; cameras look at its centre from
    azimuths ``360° * k / views`` (k = 0 is the +z side, y is up) at ``elevation`` degrees.
    Returns one image tiled in a near-square grid (2×2 for 4 views, filled row by row, empty
    cells in the background colour) when ``tile``, else a list of ``size``×``size`` images.
    """
    if views < 1 or size < 1:
        raise ValueError(f"views and size must be positive, got views={views}, size={size}")
    if not -90.0 < elevation < 90.0:
        raise ValueError(f"elevation must be between -90 and 90 degrees, got {elevation}")
    if projection not in ("perspective", "orthographic"):
        raise ValueError(f"unknown projection {projection!r}; expected perspective or orthographic")
    path = str(mesh) if isinstance(mesh, str | Path) else None
    geometries = [_Geometry.of(part) for part in _parts_of(mesh, limits)]
    if sum(len(g.faces) for g in geometries) > SIMPLIFY_ABOVE:
        geometries = simplify(geometries, SIMPLIFY_ABOVE)
    scene = _Scene(geometries)
    cameras = [
        scene.camera(2 * math.pi * k / views, math.radians(elevation), size, projection)
        for k in range(views)
    ]
    work = sum(_work(scene.faces, camera, size) for camera in cameras)
    limits.enforce("max_mesh_render_work", work, "rendering needs {} pixel-triangle tests", path)
    clock = _Deadline(limits.max_mesh_seconds, path)
    images = [scene.render(camera, size, background, clock) for camera in cameras]
    return _tile(images, background) if tile else images


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _format_of(path: Path) -> str:
    kind = path.suffix.lower().lstrip(".")
    if kind not in MESH_FORMATS:
        raise MediaError(
            f"unsupported mesh format {path.suffix or '(no extension)'!r}; "
            f"expected one of {', '.join(MESH_FORMATS)}",
            path=str(path),
        )
    return kind


def _load_parts(path: str | Path, limits: MediaLimits) -> list[trimesh.Trimesh]:
    """A mesh file's triangle geometries, each placed by its scene transform."""
    import trimesh

    path = check_file(path, limits)
    kind = _format_of(path)
    faces = _header_faces(path, kind)
    if faces is not None:
        limits.enforce("max_mesh_faces", faces, "mesh has {} faces", path)
    try:
        scene = trimesh.load_scene(str(path), file_type=kind)
        parts = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    except MediaError:
        raise
    except Exception as error:  # trimesh's loaders raise many types on malformed input
        raise MediaError(f"cannot read mesh: {error}", path=str(path)) from None
    limits.enforce("max_mesh_faces", sum(len(p.faces) for p in parts), "mesh has {} faces", path)
    if not parts:
        raise MediaError("file holds no triangle mesh", path=str(path))
    return parts


def _parts_of(
    mesh: trimesh.Trimesh | trimesh.Scene | str | Path, limits: MediaLimits
) -> list[trimesh.Trimesh]:
    import trimesh

    if isinstance(mesh, str | Path):
        return _load_parts(mesh, limits)
    if isinstance(mesh, trimesh.Scene):
        parts = [g for g in mesh.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    else:
        parts = [mesh] if len(mesh.faces) else []
    if not parts:
        raise MediaError("mesh has no faces")
    limits.enforce("max_mesh_faces", sum(len(p.faces) for p in parts), "mesh has {} faces", None)
    return parts


def _header_faces(path: Path, kind: str) -> int | None:
    """The triangle count a binary STL, PLY, glb or glTF header gives, or None (no header).

    Raises MediaError for a header that is malformed or promises more bytes than the file has.
    """
    if kind == "stl":
        return _stl_faces(path)
    if kind == "ply":
        return _ply_faces(path)
    if kind == "glb":
        return _gltf_faces(_glb_json(path), path)
    if kind == "gltf":
        try:
            document = json.loads(path.read_bytes())
        except ValueError as error:
            raise MediaError(f"not a glTF file: {error}", path=str(path)) from None
        return _gltf_faces(document, path)
    return None


def _stl_faces(path: Path) -> int | None:
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(84)
    if head.lstrip().startswith(b"solid"):
        count = struct.unpack("<I", head[80:84])[0] if len(head) == 84 else -1
        if 84 + 50 * count != size:
            return None  # ASCII STL: no header to read
    if len(head) < 84:
        raise MediaError(f"not an STL file: only {size} bytes", path=str(path))
    count = struct.unpack("<I", head[80:84])[0]
    if 84 + 50 * count > size:
        raise MediaError(
            f"STL file is truncated or corrupt: its header lists {count} triangles "
            f"({84 + 50 * count} bytes), the file has {size} bytes",
            path=str(path),
        )
    return int(count)


def _ply_faces(path: Path) -> int:
    with path.open("rb") as file:
        head = file.read(1 << 16)
    if not head.startswith(b"ply") or b"end_header" not in head:
        raise MediaError("not a PLY file (no 'ply ... end_header' header)", path=str(path))
    for line in head.split(b"end_header")[0].splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == b"element" and words[1] == b"face":
            return int(words[2])
    return 0


def _glb_json(path: Path) -> Any:
    size = path.stat().st_size
    with path.open("rb") as file:
        header = file.read(20)
        if len(header) < 20 or header[:4] != b"glTF":
            raise MediaError("not a glb file (no 'glTF' header)", path=str(path))
        _, _, length, chunk_length, chunk_type = struct.unpack("<4sIII4s", header)
        if length > size:
            raise MediaError(
                f"glb file is truncated: its header declares {length} bytes, the file has {size}",
                path=str(path),
            )
        if chunk_type != b"JSON":
            raise MediaError("glb file does not start with a JSON chunk", path=str(path))
        try:
            document = json.loads(file.read(chunk_length))
        except ValueError as error:
            raise MediaError(f"glb file has a broken JSON chunk: {error}", path=str(path)) from None
    return document


def _gltf_faces(document: Any, path: Path) -> int:
    """Triangles of every mesh instance the glTF nodes place (strips and fans included)."""
    try:
        accessors = document.get("accessors", [])
        per_mesh = []
        for mesh in document.get("meshes", []):
            triangles = 0
            for primitive in mesh.get("primitives", []):
                index = primitive.get("indices", primitive.get("attributes", {}).get("POSITION"))
                count = int(accessors[index]["count"]) if index is not None else 0
                mode = primitive.get("mode", 4)
                triangles += count // 3 if mode == 4 else max(count - 2, 0) if mode in (5, 6) else 0
            per_mesh.append(triangles)
        nodes = [n["mesh"] for n in document.get("nodes", []) if "mesh" in n]
        return sum(per_mesh[i] for i in nodes) if nodes else sum(per_mesh)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as error:
        raise MediaError(f"glTF document is malformed: {error!r}", path=str(path)) from None


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


@dataclass
class _Paint:
    """Where one geometry's colour comes from, in order: texture, vertex, face, flat.

    Colours are RGB floats in [0, 1], except ``texture``, kept as the image's uint8 texels.
    ``flat`` multiplies the texture (glTF ``baseColorFactor``) or is the colour itself.
    """

    flat: np.ndarray
    texture: np.ndarray | None = None
    uv: np.ndarray | None = None
    vertex: np.ndarray | None = None
    face: np.ndarray | None = None

    def colours(self, faces: np.ndarray, corners: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """RGB in [0, 1] for pixels on ``faces`` (face indices; ``corners`` their vertex
        indices) at barycentric weights ``bary``."""
        if self.texture is not None and self.uv is not None:
            uv = np.einsum("kij,ki->kj", self.uv[corners], bary) % 1.0
            height, width = self.texture.shape[:2]
            cols = np.minimum((uv[:, 0] * width).astype(np.int64), width - 1)
            rows = np.minimum(((1.0 - uv[:, 1]) * height).astype(np.int64), height - 1)
            return self.texture[rows, cols] / 255.0 * self.flat
        if self.vertex is not None:
            return np.einsum("kij,ki->kj", self.vertex[corners], bary)
        if self.face is not None:
            return self.face[faces]
        return np.broadcast_to(self.flat, (len(faces), 3))


def _paint_of(mesh: trimesh.Trimesh) -> _Paint:
    from trimesh.visual import ColorVisuals, TextureVisuals

    visual = mesh.visual
    if isinstance(visual, TextureVisuals):
        material = visual.material
        image = getattr(material, "baseColorTexture", None)
        factor = getattr(material, "baseColorFactor", None)
        if image is None:
            image, factor = getattr(material, "image", None), None  # SimpleMaterial (OBJ)
        if image is None or visual.uv is None:
            return _Paint(flat=np.asarray(material.main_color[:3], np.float64) / 255.0)
        texture = np.asarray(image.convert("RGB"), np.uint8)
        flat = np.ones(3) if factor is None else np.asarray(factor[:3], np.float64) / 255.0
        return _Paint(flat=flat, texture=texture, uv=np.asarray(visual.uv, np.float64))
    if isinstance(visual, ColorVisuals) and visual.kind == "vertex":
        return _Paint(_GREY, vertex=np.asarray(visual.vertex_colors[:, :3], np.float64) / 255.0)
    if isinstance(visual, ColorVisuals) and visual.kind == "face":
        return _Paint(_GREY, face=np.asarray(visual.face_colors[:, :3], np.float64) / 255.0)
    return _Paint(_GREY)


@dataclass
class _Geometry:
    """One part of a mesh as the renderer reads it: vertices, triangles and their paint."""

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64
    paint: _Paint

    @classmethod
    def of(cls, mesh: trimesh.Trimesh) -> _Geometry:
        vertices = np.asarray(mesh.vertices, np.float64)
        return cls(vertices, np.asarray(mesh.faces, np.int64), _paint_of(mesh))


def simplify(geometries: list[_Geometry], faces: int) -> list[_Geometry]:
    """The geometries with at most ``faces`` triangles in all (for ``faces`` ≥ 24), by vertex
    clustering on one grid over their common bounding box: the finest grid that fits, found
    from the triangle count of a first guess (a surface's count goes with the square of the
    grid's resolution)."""
    every = np.concatenate([g.vertices for g in geometries])
    low = every.min(axis=0)
    extent = float((every.max(axis=0) - low).max()) or 1.0
    grid = max(2, math.ceil(math.sqrt(faces)))
    while True:
        merged = [_cluster(g, low, extent, grid) for g in geometries]
        total = sum(len(g.faces) for g in merged)
        if total <= faces or grid == 2:
            return [g for g in merged if len(g.faces)]
        grid = max(2, min(grid - 1, int(grid * math.sqrt(faces / total) * 0.97)))


def _cluster(geometry: _Geometry, low: np.ndarray, extent: float, grid: int) -> _Geometry:
    """Merge the vertices of each grid cell into one (positions and colours averaged), drop
    the triangles that collapse and the ones that come out twice."""
    cell = np.clip(((geometry.vertices - low) / extent * grid).astype(np.int64), 0, grid - 1)
    keys = (cell[:, 0] * grid + cell[:, 1]) * grid + cell[:, 2]
    _, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(-1)
    count = np.bincount(inverse).astype(np.float64)

    def mean(values: np.ndarray) -> np.ndarray:
        columns = [np.bincount(inverse, weights=values[:, k]) for k in range(values.shape[1])]
        return np.stack(columns, axis=1) / count[:, None]

    faces = inverse[geometry.faces]
    distinct = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])
    distinct &= faces[:, 0] != faces[:, 2]
    kept = np.flatnonzero(distinct)
    corners = np.sort(faces[kept], axis=1)
    order = np.lexsort((corners[:, 2], corners[:, 1], corners[:, 0]))
    repeated = np.zeros(len(order), bool)
    repeated[1:] = (np.diff(corners[order], axis=0) == 0).all(axis=1)
    kept = np.sort(kept[order[~repeated]])  # the first of each triangle, in the original order
    paint = geometry.paint
    colours = _vertex_colours(paint)
    if colours is not None:
        paint = _Paint(_GREY, vertex=mean(colours))
    elif paint.face is not None:
        paint = _Paint(_GREY, face=paint.face[kept])
    return _Geometry(mean(geometry.vertices), faces[kept], paint)


def _vertex_colours(paint: _Paint) -> np.ndarray | None:
    """RGB in [0, 1] per vertex for a textured (sampled at each vertex's UV) or vertex-coloured
    paint; None for face colours and flat paint."""
    if paint.texture is not None and paint.uv is not None:
        one = np.ones((len(paint.uv), 1))
        corners = np.arange(len(paint.uv))[:, None].repeat(3, axis=1)
        return paint.colours(np.zeros(len(paint.uv), np.int64), corners, one * [1.0, 0.0, 0.0])
    return paint.vertex


@dataclass
class _Camera:
    """One view: the screen position and depth key of every vertex, and the camera's frame."""

    x: np.ndarray
    y: np.ndarray
    key: np.ndarray  # linear in screen space, smaller is nearer
    inverse_depth: np.ndarray
    direction: np.ndarray
    up: np.ndarray
    right: np.ndarray
    eye: np.ndarray


class _Deadline:
    """``max_mesh_seconds`` from now; :meth:`check` raises once it has passed."""

    def __init__(self, seconds: float, path: str | None) -> None:
        self.seconds = seconds
        self.path = path
        self.start = time.monotonic()

    def check(self) -> None:
        if time.monotonic() - self.start > self.seconds:
            raise MediaError(
                f"rendering the mesh took more than {self.seconds:g} s (--max-mesh-seconds)",
                path=self.path,
            )


def _boxes(
    x: np.ndarray, y: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pixel columns and rows (first, last) of each screen triangle's box, on screen."""
    bx0 = np.maximum(np.ceil(x.min(axis=1) - 0.5), 0).astype(np.int64)
    bx1 = np.minimum(np.floor(x.max(axis=1) - 0.5), size - 1).astype(np.int64)
    by0 = np.maximum(np.ceil(y.min(axis=1) - 0.5), 0).astype(np.int64)
    by1 = np.minimum(np.floor(y.max(axis=1) - 0.5), size - 1).astype(np.int64)
    return bx0, bx1, by0, by1


def _work(faces: np.ndarray, camera: _Camera, size: int) -> int:
    """The pixel-triangle tests :func:`_rasterize` will make for this view (at most)."""
    bx0, bx1, by0, by1 = _boxes(camera.x[faces], camera.y[faces], size)
    return int((np.maximum(bx1 - bx0 + 1, 0) * np.maximum(by1 - by0 + 1, 0)).sum())


class _Scene:
    """All geometries of a mesh in one vertex/face table, normalised to the unit sphere."""

    def __init__(self, parts: list[_Geometry]) -> None:
        offsets = np.cumsum([0] + [len(p.vertices) for p in parts])
        vertices = np.concatenate([p.vertices for p in parts])
        self.faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets, strict=False)])
        self.owner = np.repeat(np.arange(len(parts)), [len(p.faces) for p in parts])
        self.face_starts = np.cumsum([0] + [len(p.faces) for p in parts])
        self.vertex_starts = offsets
        self.paints = [p.paint for p in parts]
        used = vertices[np.unique(self.faces)]
        centre = (used.min(axis=0) + used.max(axis=0)) / 2.0
        radius = float(np.linalg.norm(used - centre, axis=1).max())
        if not radius > 0.0:
            raise MediaError("mesh is degenerate: all its vertices are at one point")
        self.vertices = (vertices - centre) / radius
        corners = self.vertices[self.faces]
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        lengths = np.linalg.norm(normals, axis=1, keepdims=True)
        self.normals = np.divide(normals, lengths, out=np.zeros_like(normals), where=lengths > 0)
        self.centroids = corners.mean(axis=1)

    def camera(self, azimuth: float, elevation: float, size: int, projection: str) -> _Camera:
        """Where the vertices fall on a ``size`` pixel view from ``azimuth`` and ``elevation``."""
        distance = 2.8
        direction = np.array(
            [
                math.cos(elevation) * math.sin(azimuth),
                math.sin(elevation),
                math.cos(elevation) * math.cos(azimuth),
            ]
        )
        eye = distance * direction
        forward = -direction
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        camera = (self.vertices - eye) @ np.stack([right, up, forward]).T
        depth = camera[:, 2]
        if projection == "perspective":
            # The unit sphere seen from `distance` spans tan(asin(1/d)) = 1/sqrt(d² - 1).
            scale = math.sqrt(distance**2 - 1.0) / 1.05
            screen = camera[:, :2] / depth[:, None] * scale
            inverse_depth = 1.0 / depth
            key = -inverse_depth  # linear in screen space; smaller is nearer
        else:
            screen = camera[:, :2] / 1.05
            inverse_depth = np.ones_like(depth)
            key = depth
        x = (screen[:, 0] + 1.0) * (size / 2.0)
        y = (1.0 - screen[:, 1]) * (size / 2.0)
        return _Camera(x, y, key, inverse_depth, direction, up, right, eye)

    def render(
        self, camera: _Camera, size: int, background: tuple[int, int, int], clock: _Deadline
    ) -> Image.Image:
        face_of, bary = _rasterize(camera.x, camera.y, camera.key, self.faces, size, clock)
        inverse_depth, direction, up = camera.inverse_depth, camera.direction, camera.up
        right, eye = camera.right, camera.eye

        pixels = np.empty((size * size, 3), np.uint8)
        pixels[:] = background
        covered = np.flatnonzero(face_of >= 0)
        faces = face_of[covered]
        weights = bary[covered] * inverse_depth[self.faces[faces]]
        weights /= weights.sum(axis=1, keepdims=True)  # perspective-correct barycentrics

        light = 0.8 * direction + 0.45 * up - 0.4 * right
        light /= np.linalg.norm(light)
        normals = self.normals[faces]
        facing = np.sign(np.einsum("ij,ij->i", normals, eye - self.centroids[faces]))
        lambert = np.clip(np.einsum("ij,j->i", normals, light) * facing, 0.0, 1.0)
        shade = _AMBIENT + (1.0 - _AMBIENT) * lambert

        colours = np.empty((len(faces), 3))
        owners = self.owner[faces]
        for index, paint in enumerate(self.paints):
            mine = np.flatnonzero(owners == index)
            if not len(mine):
                continue
            local = faces[mine] - self.face_starts[index]
            corners = self.faces[faces[mine]] - self.vertex_starts[index]
            colours[mine] = paint.colours(local, corners, weights[mine])
        lit = np.clip(colours * shade[:, None], 0.0, 1.0)
        pixels[covered] = np.rint(lit * 255.0).astype(np.uint8)
        return Image.fromarray(pixels.reshape(size, size, 3), "RGB")


def _rasterize(
    x: np.ndarray,
    y: np.ndarray,
    key: np.ndarray,
    faces: np.ndarray,
    size: int,
    clock: _Deadline | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer the triangles ``faces`` (screen coordinates ``x``, ``y`` per vertex, depth
    ``key`` linear in screen space, smaller nearer) at pixel centres.

    Returns the face index per pixel (-1 for background) and the screen-space barycentric
    weights there. Each candidate pixel packs its quantised depth and face index into one
    integer, so a scatter-minimum resolves visibility with ties going to the lower face index.
    """
    edges = _Edges(x[faces], y[faces], key[faces])
    bx0, bx1, by0, by1 = _boxes(edges.x, edges.y, size)
    visible = np.flatnonzero(edges.valid & (bx1 >= bx0) & (by1 >= by0))
    widths = bx1 - bx0 + 1
    counts = widths * (by1 - by0 + 1)

    face_bits = max(int(len(faces) - 1).bit_length(), 1)
    depth_steps = (1 << (62 - face_bits)) - 1
    low, high = float(key.min()), float(key.max())
    span = high - low if high > low else 1.0
    empty = np.iinfo(np.int64).max
    best = np.full(size * size, empty, np.int64)

    ends = np.cumsum(counts[visible])
    start = 0
    while start < len(visible):
        if clock is not None:
            clock.check()
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + _CANDIDATES_PER_CHUNK, "right")), start + 1)
        chunk = visible[start:stop]
        start = stop
        n = counts[chunk]
        face = np.repeat(chunk, n)
        offset = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        px = bx0[face] + offset % widths[face]
        py = by0[face] + offset // widths[face]
        w1, w2, z = edges.at(face, px, py)
        inside = (w1 >= -_EDGE_TOLERANCE) & (w2 >= -_EDGE_TOLERANCE)
        inside &= w1 + w2 <= 1.0 + _EDGE_TOLERANCE
        steps = np.clip((z[inside] - low) / span * depth_steps, 0, depth_steps).astype(np.int64)
        np.minimum.at(best, py[inside] * size + px[inside], (steps << face_bits) | face[inside])

    covered = np.flatnonzero(best != empty)
    face_of = np.full(size * size, -1, np.int64)
    face_of[covered] = best[covered] & ((1 << face_bits) - 1)
    bary = np.zeros((size * size, 3))
    w1, w2, _ = edges.at(face_of[covered], covered % size, covered // size)
    bary[covered] = np.stack([1.0 - w1 - w2, w1, w2], axis=1)
    return face_of, bary


class _Edges:
    """Edge functions of screen triangles, relative to each triangle's first vertex (which
    keeps them precise far from the origin)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, key: np.ndarray) -> None:
        self.x, self.y = x, y
        ex1, ey1 = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]
        ex2, ey2 = x[:, 2] - x[:, 0], y[:, 2] - y[:, 0]
        area = ex1 * ey2 - ex2 * ey1
        self.valid = np.abs(area) > 1e-12
        area = np.where(self.valid, area, 1.0)
        self.a1, self.b1 = ey2 / area, -ex2 / area
        self.a2, self.b2 = -ey1 / area, ex1 / area
        self.k0, self.dk1, self.dk2 = key[:, 0], key[:, 1] - key[:, 0], key[:, 2] - key[:, 0]

    def at(
        self, face: np.ndarray, px: np.ndarray, py: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weights of the second and third vertex, and the depth key, at pixel centres."""
        dx = px + 0.5 - self.x[face, 0]
        dy = py + 0.5 - self.y[face, 0]
        w1 = self.a1[face] * dx + self.b1[face] * dy
        w2 = self.a2[face] * dx + self.b2[face] * dy
        return w1, w2, self.k0[face] + w1 * self.dk1[face] + w2 * self.dk2[face]


def _tile(images: list[Image.Image], background: tuple[int, int, int]) -> Image.Image:
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    width, height = images[0].size
    canvas = Image.new("RGB", (columns * width, rows * height), background)
    for index, image in enumerate(images):
        canvas.paste(image, ((index % columns) * width, (index // columns) * height))
    return canvas
