"""Bulk downloads: requests from an EID list, run ``parallel`` at a time through ukbfetch or ``dx``, verified zips.

``bulk`` turns EIDs into requests and splits them into calls; ``ukbfetch`` and ``dx`` make one call of a tool in its
own scratch folder; ``fetch`` schedules the calls with retries and moves verified zips into place; ``verify`` checks a
zip; ``keyfile`` checks ukbfetch's key file without ever showing its content; ``resume`` finds what is done already.
"""
