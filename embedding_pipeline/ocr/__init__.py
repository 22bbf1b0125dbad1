"""Pages only OCR can read (scans, images, PDF pages without a usable text layer), read by Yandex
Vision OCR once per version of a document: reading.py, and batches.py for what is sent."""
