DROP TABLE loose_blobs;
