"""The device side of ADB for the emulated phone (what adbd is on a real one).

``protocol`` frames packets, ``auth`` checks RSA keys like adbd's ``adb_keys``, ``link``
throttles bytes like a USB cable, ``stream`` carries one service's bytes with ADB's
stop-and-wait flow control, ``connection`` runs one client, and ``shell``/``sync`` are the
services. Facts it follows: AOSP's adb sources (packages/modules/adb: protocol.txt, SYNC.TXT,
adb.cpp, daemon/).
"""
