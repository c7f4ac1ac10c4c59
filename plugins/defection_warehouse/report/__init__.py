"""The leadership view, built after each publish from the published schema only: a
self-contained HTML report (`html.build_report`) and one digest per owning function
(`digests`), sent by `digests.send_digests`."""
