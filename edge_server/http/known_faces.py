"""The people faces are recognised as, over HTTP: list, register from photos, delete, export
and import.

Changing them needs an API key configured and sent, as learned models do (anyone on the LAN
could otherwise register a face as someone's, or delete them); reading the names needs one
only when keys are configured (as every route). DeepStack's face routes (`deepstack/face.py`)
stay as open as DeepStack left them, for the clients that cannot send a key.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..core.errors import BadRequest, Forbidden, NotFound, UnsupportedMediaType
from ..serving.faces import Faces
from ..serving.schemas import PeopleImport, PeopleList, PersonRegistration
from ..serving.service import Service
from . import problems
from .deps import Authorized, ServiceDep, counted_no_face, require_faces
from .exchange import exchange
from .upload import BINARY, batch_form, form_content, media_type, photos_from_form, read_body

router = APIRouter(
    prefix="/v1/faces",
    tags=["Faces"],
    dependencies=[Authorized],
    responses=problems.openapi_responses(401),
)


_REGISTER_BODY = {
    "requestBody": {
        "required": True,
        "content": form_content(
            {
                "name": {"type": "string", "description": "The person's name."},
                "image": {
                    "type": "array",
                    "items": BINARY,
                    "description": "One or more photos of the person (repeat the field); the "
                    "largest face of each is added.",
                },
            },
            ["name", "image"],
        ),
    }
}


def _faces_to_change(service: Service, what: str) -> Faces:
    """403 without keys configured, before the body is read."""
    faces = require_faces(service)
    if not service.keys.enabled:
        raise Forbidden(
            f"{what} over HTTP needs EDGE_API_KEY (anyone on the LAN could otherwise register "
            "or delete people); set a key and send it"
        )
    return faces


@router.get("", response_model=PeopleList, responses=problems.openapi_responses(404, 503))
async def people(service: ServiceDep) -> PeopleList:
    """The names of the people registered, and the threshold in effect for them."""
    return require_faces(service).listing()


@router.post(
    "",
    response_model=PersonRegistration,
    status_code=201,
    responses=problems.openapi_responses(400, 403, 404, 408, 413, 415, 503, 504),
    openapi_extra=_REGISTER_BODY,
    summary="Register a person from photos",
)
async def register(request: Request, service: ServiceDep) -> PersonRegistration:
    """Add the photos (repeated `image` fields) to the person `name`, created on first use;
    answered once they are on disk. A photo with no face refuses the whole request (400,
    nothing stored)."""
    faces = _faces_to_change(service, "registering people")
    if media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType(
            "send the photos as multipart form data: -F name=alice -F image=@a.jpg -F image=@b.jpg"
        )

    async def read() -> tuple[str, list[bytes]]:
        async with batch_form(request, service.settings) as form:
            name = form.get("name")
            if not isinstance(name, str) or not name.strip():
                service.metrics.faces_refused.labels("no_userid").inc()
                raise BadRequest("the form needs a text field 'name' naming the person")
            photos = await photos_from_form(form)
            if not photos:
                service.metrics.faces_refused.labels("no_image").inc()
                raise BadRequest("the form has no 'image' file; add one or more photos")
            return name.strip(), photos

    async def add(upload: tuple[str, list[bytes]]) -> PersonRegistration:
        with counted_no_face(service):
            done = await faces.register(*upload)
        return PersonRegistration(
            name=done.userid, added=done.added, total=done.total, created=done.created
        )

    return await exchange(service, request, read, add)


@router.get(
    "/export",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {"schema": BINARY}}},
        **problems.openapi_responses(403, 404, 503),
    },
    summary="Export the people",
)
async def export(service: ServiceDep) -> Response:
    """One file holding every person's face descriptors (no photos), for a backup or another
    device: `POST /v1/faces/import` takes it. Biometric data: keep it as safe as the device."""
    faces = _faces_to_change(service, "exporting people")
    return Response(
        faces.export(),
        media_type="application/octet-stream",
        headers={"Content-Disposition": 'attachment; filename="people.faces"'},
    )


@router.post(
    "/import",
    response_model=PeopleImport,
    responses=problems.openapi_responses(400, 403, 404, 413, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": BINARY}},
        }
    },
    summary="Import people",
)
async def import_people(request: Request, service: ServiceDep) -> PeopleImport:
    """Add the people of an export file (the request body) to those registered; a person
    already registered gets the file's descriptors added. A file that is not an export is a
    400 and changes nothing."""
    faces = _faces_to_change(service, "importing people")
    data = await read_body(request, service.settings.face_max_import_bytes)
    return PeopleImport(people=await faces.import_(data))


# Last: /export and /import are matched first, so their Allow headers name their own methods
# (a person called "export" is still deleted here: only this route takes DELETE).
@router.delete(
    "/{name}",
    status_code=204,
    responses=problems.openapi_responses(403, 404, 503),
    summary="Delete a person",
)
async def delete(service: ServiceDep, name: str) -> Response:
    """Forget the person: their descriptors are rewritten out of the file on disk."""
    faces = _faces_to_change(service, "deleting people")
    if not await faces.delete(name):
        raise NotFound(f"nobody called {name!r} is registered; GET /v1/faces lists the people")
    return Response(status_code=204)
