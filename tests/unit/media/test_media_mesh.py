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
