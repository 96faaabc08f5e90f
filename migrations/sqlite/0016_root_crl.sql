-- The root CA's CRL (DER), signed where the root key is (on first start, or offline with
-- `sigil ca crl`) and published by the server at /crl/<ca>-root.crl.
ALTER TABLE cas ADD COLUMN root_crl_der BLOB;
