// Package weights reads and writes checkpoints by tensor name and loads them into gotch
// VarStores, the way Hugging Face transformers does: parameter paths equal checkpoint keys, so
// importing a model is "look every variable up by name, check its shape, report what is
// missing or unexpected".
//
// A Source is an open checkpoint whose tensors are listed up front and read one at a time:
//
//   - Safetensors: model.safetensors (the preferred format: a JSON header and raw bytes, no
//     code, every tensor read with one ReadAt);
//   - TorchFile: a torch.save state dict (pytorch_model.bin, *.pth), zip or legacy layout.
//     Only its pickle is decoded (with gotch's unpickler, after a scan that refuses any global
//     beyond torch's tensor-rebuild functions, storage classes and collections.OrderedDict);
//     tensor bytes are read on demand. gotch's own pickle.Decode would read every storage into
//     Go slices, about 2-3x the file size in RAM; this package does not use it;
//   - Sharded: a model.safetensors.index.json or pytorch_model.bin.index.json and its shards.
//
// OpenDir picks a model folder's weights as transformers does (safetensors first), Open a
// single file by its name. LoadInto fills a VarStore from a Source, checking everything before
// copying anything and holding at most one checkpoint tensor (or none: with this package's
// Sources, bytes go straight into matching variables) besides the model. SaveVarStore and
// WriteSafetensors write safetensors files atomically; ReadConfigJSON reads a folder's JSON
// files with errors that give file, line and column.
package weights
