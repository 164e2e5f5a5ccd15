"""What the web app's fixtures plant in the demo data, for the tests that look for it.

(Test files import these from here, not from ``conftest``: several test folders have a
``conftest.py``, and ``from conftest import`` finds whichever was imported last.)
"""

#: The first caption of one validation image is replaced by this: it must render as text.
HOSTILE = '<script>alert("x")</script> a dog & "friends" =1+1'
#: Another validation image gets a photo URL that cannot load (nothing listens on port 9).
BROKEN_PHOTO = "http://127.0.0.1:9/train2014/COCO_train2014_000000000009.jpg"
