"""The web app's fixtures: the tiny trained demo, served from memory or on a real port."""

import threading

import pytest
from cli_support import RUN, no_course_data
from resnet_support import random_state
from web_support import BROKEN_PHOTO, HOSTILE
from werkzeug.serving import make_server

from capstone.dataset import load_dataset
from capstone.frontends.web.app import RequestHandler, create_app
from capstone.frontends.web.service import SearchService
from capstone.photos.describer import PhotoDescriber
from capstone.runs import Run


@pytest.fixture(scope="module")
def web_service(shared_home, tmp_path_factory):
    """`SearchService` over the shared tiny demo run, with one hostile caption and a ResNet-18
    of random weights for photo queries."""
    root, code, _, err = shared_home
    assert code == 0, err
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAPSTONE_HOME", str(root))
        no_course_data(mp, tmp_path_factory.mktemp("no_course"))
        run = Run.load(RUN)
        dataset = load_dataset(embed_captions=False)
        run.check(dataset)
        service = SearchService.load(run, dataset, PhotoDescriber(random_state()))
    data = dataset.data
    row = int(data.image_index(_validation_image(service, 0)))
    data.captions[int(data.caption_offsets[row])] = HOSTILE
    data.urls[int(data.image_index(_validation_image(service, 1)))] = BROKEN_PHOTO
    return service


def _validation_image(service: SearchService, i: int) -> int:
    return int(service.engines["validation"].database.image_ids[i])


@pytest.fixture(scope="module")
def hostile_image(web_service) -> int:
    """The id of the image whose first caption is `HOSTILE`."""
    return _validation_image(web_service, 0)


@pytest.fixture(scope="module")
def broken_photo_image(web_service) -> int:
    """The id of the image whose URL is `BROKEN_PHOTO`."""
    return _validation_image(web_service, 1)


@pytest.fixture(scope="module")
def client(web_service):
    app = create_app(web_service)
    app.testing = False  # errors take the app's own handlers, as in production
    return app.test_client()


@pytest.fixture(scope="module")
def live_url(web_service):
    """The app on a real loopback port, in a thread, for the browser."""
    app = create_app(web_service)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=RequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
