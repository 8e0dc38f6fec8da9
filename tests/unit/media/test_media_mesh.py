"""Meshes: loading every format with colours kept, header limits, bad files, and renders."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import trimesh
from conftest import Media, garbage, textured_quad, truncate
from PIL import Image

from omnirm.errors import MediaError
from omnirm.media import MediaLimits, load_mesh, mesh_info, render_views

FORMATS = ["glb", "obj", "ply", "stl"]


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the mesh was loaded")

    monkeypatch.setattr(trimesh, "load_scene", refuse)


def red_dominant(pixel: np.ndarray) -> bool:
    r, g, b = (int(v) for v in pixel)
    return r > 100 and r > 2 * g and r > 2 * b


@pytest.mark.parametrize("extension", FORMATS)
def test_every_format_loads(media: Media, extension: str) -> None:
    mesh = load_mesh(media.root / f"sphere.{extension}")
    assert isinstance(mesh, trimesh.Trimesh) and len(mesh.faces) == 320
    if extension != "stl":  # STL has no colours
        assert mesh.visual.kind == "vertex"
        assert (mesh.visual.vertex_colors[:, :3] == (255, 0, 0)).all()


@pytest.mark.parametrize("name", ["textured_glb", "textured_obj"])
def test_textures_are_kept(media: Media, name: str) -> None:
    mesh = load_mesh(getattr(media, name))
    assert isinstance(mesh.visual, trimesh.visual.TextureVisuals)
    assert mesh.visual.uv is not None and len(mesh.visual.uv) == 4


def test_scene_is_flattened_with_its_transforms(tmp_path: Path) -> None:
    left, right = trimesh.creation.box(), trimesh.creation.box()
    left.visual.face_colors = (255, 0, 0, 255)
    right.visual.face_colors = (0, 0, 255, 255)
    scene = trimesh.Scene()
    scene.add_geometry(left, transform=trimesh.transformations.translation_matrix([-2, 0, 0]))
    scene.add_geometry(right, transform=trimesh.transformations.translation_matrix([2, 0, 0]))
    scene.export(tmp_path / "two.glb")
    mesh = load_mesh(tmp_path / "two.glb")
    assert len(mesh.faces) == 24
    assert np.allclose(mesh.bounds, [[-2.5, -0.5, -0.5], [2.5, 0.5, 0.5]])
    colours = {tuple(c) for c in mesh.visual.face_colors[:, :3].tolist()}
    assert colours == {(255, 0, 0), (0, 0, 255)}


def test_mixed_textured_and_coloured_parts_keep_their_colours(tmp_path: Path) -> None:
    texture = Image.new("RGB", (4, 4), (0, 255, 0))
    sphere = trimesh.creation.icosphere(subdivisions=1)
    sphere.visual.vertex_colors = (255, 0, 0, 255)
    scene = trimesh.Scene([textured_quad(texture), sphere.apply_translation([0, 0, 3])])
    scene.export(tmp_path / "mixed.glb")
    colours = load_mesh(tmp_path / "mixed.glb").visual.vertex_colors[:, :3]
    assert {(255, 0, 0), (0, 255, 0)} <= {tuple(c) for c in colours.tolist()}


@pytest.mark.parametrize("extension", ["glb", "ply", "stl"])
def test_header_formats_are_counted_without_loading(
    media: Media, extension: str, no_loading: None
) -> None:
    info = mesh_info(media.root / f"sphere.{extension}")
    assert (info.format, info.faces) == (extension, 320)


def test_gltf_with_external_buffers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2)
    sphere.visual.vertex_colors = (0, 0, 255, 255)
    for name, data in sphere.export(file_type="gltf").items():
        (tmp_path / name).write_bytes(data)
    gltf = tmp_path / "model.gltf"
    mesh = load_mesh(gltf)
    assert len(mesh.faces) == 320 and (mesh.visual.vertex_colors[:, :3] == (0, 0, 255)).all()
    with monkeypatch.context() as patched:
        patched.setattr(trimesh, "load_scene", None)  # the header alone answers
        assert mesh_info(gltf).faces == 320
    for buffer in tmp_path.glob("*.bin"):
        buffer.unlink()
    with pytest.raises(MediaError, match="cannot read mesh"):
        load_mesh(gltf)


@pytest.mark.parametrize("extension", ["glb", "ply", "stl"])
def test_face_limit_is_checked_before_loading(
    media: Media, extension: str, no_loading: None
) -> None:
    path = media.root / f"sphere.{extension}"
    with pytest.raises(MediaError) as caught:
        load_mesh(path, MediaLimits(max_mesh_faces=100))
    assert caught.value.message == "mesh has 320 faces, over the limit of 100 (--max-mesh-faces)"
    assert caught.value.path == str(path)


def test_face_limit_for_formats_without_a_header(media: Media) -> None:
    assert mesh_info(media.mesh_obj).faces == 320
    with pytest.raises(MediaError, match="mesh has 320 faces, over the limit of 100"):
        load_mesh(media.mesh_obj, MediaLimits(max_mesh_faces=100))
    with pytest.raises(MediaError, match="over the limit of 100"):
        render_views(
            trimesh.creation.icosphere(subdivisions=2), limits=MediaLimits(max_mesh_faces=100)
        )


@pytest.mark.parametrize("extension", FORMATS)
def test_garbage_mesh(tmp_path: Path, extension: str) -> None:
    path = garbage(tmp_path / f"bad.{extension}")
    with pytest.raises(MediaError) as caught:
        load_mesh(path)
    assert caught.value.path == str(path)


@pytest.mark.parametrize(
    ("extension", "message"),
    [
        ("glb", "glb file is truncated"),
        ("ply", "cannot read mesh"),
        ("stl", "STL file is truncated"),
    ],
)
def test_truncated_mesh(media: Media, tmp_path: Path, extension: str, message: str) -> None:
    path = truncate(media.root / f"sphere.{extension}", tmp_path / f"cut.{extension}")
    with pytest.raises(MediaError, match=message):
        load_mesh(path)


def test_other_bad_meshes(tmp_path: Path) -> None:
    (tmp_path / "m.fbx").write_bytes(b"x")
    with pytest.raises(MediaError, match=r"unsupported mesh format '\.fbx'"):
        load_mesh(tmp_path / "m.fbx")
    points = trimesh.PointCloud(np.random.default_rng(0).normal(size=(10, 3)))
    points.export(tmp_path / "points.ply")
    with pytest.raises(MediaError, match="mesh has no faces"):
        mesh_info(tmp_path / "points.ply")
    with pytest.raises(MediaError, match="file holds no triangle mesh"):
        load_mesh(tmp_path / "points.ply")
    with pytest.raises(MediaError, match="no such file"):
        load_mesh(tmp_path / "missing.glb")


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", ["glb", "obj", "ply"])
def test_red_mesh_renders_red_on_white(media: Media, extension: str) -> None:
    image = render_views(media.root / f"sphere.{extension}", views=4, size=64)
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (128, 128)
    pixels = np.asarray(image)
    for row in (0, 64):
        for column in (0, 64):
            assert (pixels[row, column] == 255).all()  # tile corner: background
            assert red_dominant(pixels[row + 32, column + 32])  # tile centre: the sphere


def test_uncoloured_mesh_renders_grey(media: Media) -> None:
    pixels = np.asarray(render_views(media.mesh_stl, views=1, size=64))
    r, g, b = (int(v) for v in pixels[32, 32])
    assert r == g == b and 60 < r < 250


def test_texture_is_sampled(media: Media) -> None:
    for path in (media.textured_glb, media.textured_obj):
        front = np.asarray(render_views(path, views=1, size=64, elevation=0.0))
        quadrants = {
            "red": front[20, 20],
            "green": front[20, 44],
            "blue": front[44, 20],
            "yellow": front[44, 44],
        }
        assert quadrants["red"].argmax() == 0 and quadrants["red"][1:].max() < 30
        assert quadrants["green"].argmax() == 1 and quadrants["green"][[0, 2]].max() < 30
        assert quadrants["blue"].argmax() == 2 and quadrants["blue"][:2].max() < 30
        assert min(quadrants["yellow"][:2]) > 150 and quadrants["yellow"][2] < 30


def test_face_colours_and_occlusion() -> None:
    box = trimesh.creation.box()
    box.visual.face_colors = (0, 0, 255, 255)
    front = trimesh.creation.box(extents=(0.3, 0.3, 0.3)).apply_translation([0, 0, 0.75])
    front.visual.face_colors = (0, 255, 0, 255)
    scene = trimesh.Scene([box, front])
    pixels = np.asarray(render_views(scene, views=1, size=64, elevation=0.0))
    centre = pixels[32, 32]
    assert centre.argmax() == 1 and centre[0] == centre[2] == 0  # the nearer green box wins
    assert pixels[32, 19].argmax() == 2 and (pixels[32, 12] == 255).all()  # blue box, then white


def test_views_list_grid_background_and_projection(media: Media) -> None:
    mesh = load_mesh(media.mesh_glb)
    views = render_views(mesh, views=3, size=32, tile=False)
    assert isinstance(views, list) and [v.size for v in views] == [(32, 32)] * 3
    grid = render_views(mesh, views=3, size=32, background=(0, 0, 0))
    assert isinstance(grid, Image.Image) and grid.size == (64, 64)
    assert (np.asarray(grid)[32:, 32:] == 0).all()  # the empty fourth cell
    assert render_views(mesh, views=6, size=16).size == (48, 32)  # type: ignore[union-attr]
    ortho = np.asarray(render_views(mesh, views=1, size=32, projection="orthographic"))
    assert red_dominant(ortho[16, 16]) and (ortho[0, 0] == 255).all()


def test_render_is_deterministic(media: Media) -> None:
    def png(image: Image.Image | list[Image.Image]) -> bytes:
        assert isinstance(image, Image.Image)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    sphere = trimesh.creation.icosphere(subdivisions=4)
    sphere.visual.vertex_colors = (np.abs(sphere.vertices) * 255).astype(np.uint8)
    first, second = render_views(sphere, size=128), render_views(sphere, size=128)
    assert png(first) == png(second)
    assert png(render_views(media.textured_glb)) == png(render_views(media.textured_glb))


def test_vertex_colours_are_interpolated() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4)
    sphere.visual.vertex_colors = np.where(
        sphere.vertices[:, :1] < 0, [[255, 0, 0, 255]], [[0, 0, 255, 255]]
    ).astype(np.uint8)
    pixels = np.asarray(render_views(sphere, views=1, size=64, elevation=0.0))
    assert pixels[32, 16].argmax() == 0 and pixels[32, 48].argmax() == 2
    row = pixels[32, 28:37]
    assert len({tuple(p) for p in row.tolist()}) > 3  # a blend across the seam


def test_bad_render_arguments(media: Media) -> None:
    with pytest.raises(ValueError, match="elevation"):
        render_views(media.mesh_glb, elevation=90.0)
    with pytest.raises(ValueError, match="views and size"):
        render_views(media.mesh_glb, views=0)
    with pytest.raises(ValueError, match="projection"):
        render_views(media.mesh_glb, projection="fisheye")  # type: ignore[arg-type]
    flat = trimesh.Trimesh([[0, 0, 0]] * 3, [[0, 1, 2]], process=False)
    with pytest.raises(MediaError, match="degenerate"):
        render_views(flat)


def _coloured_sphere(subdivisions: int) -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    colours = np.clip((sphere.vertices + 1) / 2, 0, 1) * 255
    sphere.visual.vertex_colors = colours.astype(np.uint8)
    return sphere


def test_large_meshes_are_simplified_before_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    """327,680 coloured triangles are rendered from under 200,000: the views look the same."""
    from omnirm.media import mesh as mesh_module

    sphere = _coloured_sphere(7)
    simplified = mesh_module.simplify([mesh_module._Geometry.of(sphere)], 200_000)
    assert 150_000 < sum(len(g.faces) for g in simplified) <= mesh_module.SIMPLIFY_ABOVE
    fast = np.asarray(render_views(sphere, views=2, size=128), float)
    monkeypatch.setattr(mesh_module, "SIMPLIFY_ABOVE", 10**9)
    exact = np.asarray(render_views(sphere, views=2, size=128), float)
    assert np.abs(fast - exact).mean() < 1.0  # of 255
    assert fast.shape == exact.shape


def test_simplified_textures_keep_their_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    """A finely divided textured square simplified to a few hundred triangles: each quadrant
    keeps its texel's colour."""
    from omnirm.media import mesh as mesh_module

    n = 60
    grid = np.linspace(-1, 1, n + 1)
    xs, ys = np.meshgrid(grid, grid)
    vertices = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)
    corner = (np.arange(n)[:, None] * (n + 1) + np.arange(n)[None, :]).ravel()
    faces = np.concatenate(
        [np.stack([corner, corner + 1, corner + n + 2], 1),
         np.stack([corner, corner + n + 2, corner + n + 1], 1)]
    )  # fmt: skip
    image = Image.new("RGB", (2, 2))
    image.putdata([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)])
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=image)
    visual = trimesh.visual.TextureVisuals(uv=(vertices[:, :2] + 1) / 2, material=material)
    square = trimesh.Trimesh(vertices, faces, visual=visual, process=False)
    monkeypatch.setattr(mesh_module, "SIMPLIFY_ABOVE", 500)
    pixels = np.asarray(render_views(square, views=1, size=64, elevation=0.0))
    quarter = {"top left": pixels[20, 20], "top right": pixels[20, 44],
               "bottom left": pixels[44, 20], "bottom right": pixels[44, 44]}  # fmt: skip
    assert red_dominant(quarter["top left"])
    assert quarter["top right"][1] > 150 and quarter["top right"][0] < 80
    assert quarter["bottom left"][2] > 150 and quarter["bottom left"][0] < 80
    assert min(quarter["bottom right"][:2]) > 150 and quarter["bottom right"][2] < 80


def test_render_work_is_bounded_before_rasterizing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Few triangles, each across the whole view: refused from their screen boxes."""
    from omnirm.media import mesh as mesh_module

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the mesh was rasterized")

    rng = np.random.default_rng(0)
    points = rng.normal(size=(3000, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    slivers = trimesh.Trimesh(points, np.arange(3000).reshape(-1, 3), process=False)
    path = tmp_path / "slivers.ply"
    slivers.export(path)
    monkeypatch.setattr(mesh_module, "_rasterize", refuse)
    with pytest.raises(MediaError) as caught:
        render_views(path, views=4, size=256, limits=MediaLimits(max_mesh_render_work=10**7))
    message = caught.value.message
    assert message.startswith("rendering needs ") and "pixel-triangle tests" in message
    assert message.endswith("over the limit of 10000000 (--max-mesh-render-work)")
    assert int(message.split()[2]) > 10**7 and caught.value.path == str(path)
    assert MediaLimits().max_mesh_render_work < 10**9  # about 20 s of rendering at most


def test_render_time_is_limited(media: Media) -> None:
    with pytest.raises(MediaError) as caught:
        render_views(media.mesh_glb, limits=MediaLimits(max_mesh_seconds=1e-9))
    assert caught.value.message == "rendering the mesh took more than 1e-09 s (--max-mesh-seconds)"
    assert caught.value.path == str(media.mesh_glb)
    assert render_views(media.mesh_glb, limits=MediaLimits(max_mesh_seconds=60)).size == (512, 512)
