"""The TensorFlow ops mlfit lets a model run without ``--trust-model``: an allowlist.

Every op here computes on tensors held in memory (math, neural-network layers, array
shuffling, strings, in-memory variables, lookup tables and tensor lists, calls and control
flow whose bodies are checked in turn). None reads or writes a file, lists a folder, opens a
socket, runs Python, or rebuilds a graph or function from data. The list started from the
ops in real exports (Keras ``model.export`` and ``tf.saved_model.save`` of a Keras model, a
``tf.Module`` with variables, a lookup table and control flow, a TF1 ``SavedModelBuilder``
graph) and was extended by hand, one family at a time, from TensorFlow's op registry.

Deliberately absent (refused by name unless ``--trust-model``): file ops (``ReadFile``,
``WriteFile``, ``MatchingFiles``, readers, ``Save*``/``Restore*`` outside the checked
restore path, ``MergeV2Checkpoints``), every ``tf.data`` op (dataset kernels read files,
list folders, talk to the tf.data service or rebuild graphs from data:
``DatasetFromGraph``), summaries and debug ops, ``PyFunc``/``EagerPyFunc``, RPC and
collective ops, ``InitializeTableFromTextFile`` (reads a file), ``DecodeProtoV2``/
``EncodeProto`` (their descriptor source may be a file), ``XlaCallModule`` and other ops
that run code carried as data, ``ImmutableConst`` (maps a file).

``PrintV2`` is allowed only when its ``output_stream`` is stderr, stdout or a log level
(see :data:`PRINT_STREAMS`); ``RestoreV2`` only on a TF1 loader's restore path, reading the
checkpoint prefix the loader feeds (see :mod:`mlfit.safety.savedmodel_scan`).
"""

from __future__ import annotations

_STRUCTURE = """
NoOp Const HostConst Identity IdentityN Placeholder PlaceholderWithDefault PlaceholderV2 StopGradient
PreventGradient Snapshot GuaranteeConst EnsureShape CheckNumerics CheckNumericsV2 Assert Print PrintV2
StringFormat PartitionedCall StatefulPartitionedCall If StatelessIf While StatelessWhile Case
StatelessCase _If _While Enter Exit Merge Switch NextIteration LoopCond RefEnter RefExit RefMerge
RefSwitch RefNextIteration RefIdentity ControlTrigger Empty FakeParam OptionalFromValue OptionalGetValue
OptionalHasValue OptionalNone ZerosLike OnesLike DeepCopy
"""

_VARIABLES_AND_TABLES = """
VarHandleOp ReadVariableOp AssignVariableOp AssignAddVariableOp AssignSubVariableOp VarIsInitializedOp
DestroyResourceOp ResourceGather ResourceGatherNd VariableShape ResourceScatterAdd ResourceScatterSub
ResourceScatterMul ResourceScatterDiv ResourceScatterMin ResourceScatterMax ResourceScatterUpdate
ResourceScatterNdUpdate ResourceScatterNdAdd ResourceScatterNdSub VariableV2 Variable Assign AssignAdd
AssignSub IsVariableInitialized ScatterUpdate ScatterAdd ScatterSub ScatterNdUpdate ScatterNdAdd
HashTable HashTableV2 MutableHashTable MutableHashTableV2 MutableHashTableOfTensors
MutableHashTableOfTensorsV2 MutableDenseHashTable MutableDenseHashTableV2 AnonymousHashTable
AnonymousMutableHashTable AnonymousMutableHashTableOfTensors AnonymousMutableDenseHashTable
LookupTableFind LookupTableFindV2 LookupTableImport LookupTableImportV2 LookupTableExport
LookupTableExportV2 LookupTableInsert LookupTableInsertV2 LookupTableRemoveV2 LookupTableSize
LookupTableSizeV2 InitializeTable InitializeTableV2
EmptyTensorList TensorListReserve TensorListSetItem TensorListGetItem TensorListStack
TensorListFromTensor TensorListLength TensorListPushBack TensorListPushBackBatch TensorListPopBack
TensorListElementShape TensorListConcat TensorListConcatV2 TensorListGather TensorListScatter
TensorListScatterV2 TensorListScatterIntoExistingList TensorListResize TensorListSplit
TensorListConcatLists
TensorArrayV3 TensorArrayReadV3 TensorArrayWriteV3 TensorArrayGatherV3 TensorArrayScatterV3
TensorArraySizeV3 TensorArrayConcatV3 TensorArraySplitV3 TensorArrayCloseV3 TensorArrayGradV3
"""

_MATH = """
Add AddV2 AddN Sub Mul MulNoNan Div DivNoNan RealDiv FloorDiv FloorMod TruncateDiv TruncateMod Mod Pow
Maximum Minimum SquaredDifference Neg Abs Sign Reciprocal Inv Square Sqrt Rsqrt Exp Expm1 Log Log1p
Sin Cos Tan Asin Acos Atan Atan2 Sinh Cosh Tanh Asinh Acosh Atanh Sigmoid Erf Erfc Erfinv Ndtri Lgamma
Digamma Igamma Igammac Polygamma Zeta Betainc Floor Ceil Round Rint IsNan IsInf IsFinite Equal NotEqual
Less LessEqual Greater GreaterEqual ApproximateEqual LogicalAnd LogicalOr LogicalNot Select SelectV2 Cast
Bitcast BitwiseAnd BitwiseOr BitwiseXor Invert LeftShift RightShift PopulationCount ClipByValue MatMul
BatchMatMul BatchMatMulV2 BatchMatMulV3 Einsum SparseMatMul Sum Mean Prod Max Min All Any ArgMax ArgMin
Cumsum Cumprod CumulativeLogsumexp EuclideanNorm Range LinSpace SegmentSum SegmentMean SegmentMax
SegmentMin SegmentProd SegmentSumV2 SegmentProdV2 SegmentMaxV2 SegmentMinV2 UnsortedSegmentSum
UnsortedSegmentMax UnsortedSegmentMin UnsortedSegmentProd SparseSegmentSum SparseSegmentMean
SparseSegmentSqrtN SparseSegmentSumWithNumSegments SparseSegmentMeanWithNumSegments
SparseSegmentSqrtNWithNumSegments Complex Real Imag ComplexAbs Conj Angle Xlogy Xdivy Xlog1py Softplus
Softsign Bincount DenseBincount SparseBincount RaggedBincount HistogramFixedWidth Bucketize LowerBound
UpperBound NextAfter BesselI0e BesselI1e BesselI0 BesselI1 BesselJ0 BesselJ1 BesselK0 BesselK0e BesselK1
BesselK1e BesselY0 BesselY1 Dawsn Expint FresnelCos FresnelSin Spence
MatrixInverse MatrixDeterminant LogMatrixDeterminant Cholesky Qr Svd SelfAdjointEigV2 Eig MatrixSolve
MatrixSolveLs MatrixTriangularSolve MatrixBandPart MatrixDiag MatrixDiagV2 MatrixDiagV3 MatrixDiagPart
MatrixDiagPartV2 MatrixDiagPartV3 MatrixSetDiag MatrixSetDiagV2 MatrixSetDiagV3 MatrixExponential
MatrixLogarithm MatrixSquareRoot Lu TridiagonalSolve TridiagonalMatMul BandedTriangularSolve
Cross BatchMatrixBandPart BatchMatrixDiag BatchMatrixDiagPart BatchMatrixSetDiag
FFT IFFT FFT2D IFFT2D FFT3D IFFT3D RFFT IRFFT RFFT2D IRFFT2D RFFT3D IRFFT3D FFTND IFFTND RFFTND IRFFTND
AudioSpectrogram Mfcc
RandomUniform RandomUniformInt RandomStandardNormal TruncatedNormal Multinomial RandomShuffle RandomGamma
RandomPoisson RandomPoissonV2 ParameterizedTruncatedNormal StatelessRandomUniform StatelessRandomUniformInt
StatelessRandomUniformFullInt StatelessRandomNormal StatelessTruncatedNormal StatelessMultinomial
StatelessRandomUniformV2 StatelessRandomUniformIntV2 StatelessRandomUniformFullIntV2
StatelessRandomNormalV2 StatelessTruncatedNormalV2 StatelessRandomGetKeyCounter StatelessRandomGetAlg
StatelessRandomGetKeyCounterAlg StatelessRandomBinomial StatelessRandomPoisson StatelessRandomGammaV2
StatelessRandomGammaV3 StatelessParameterizedTruncatedNormal StatelessShuffle RngSkip RngReadAndSkip
StatefulUniform StatefulUniformInt StatefulUniformFullInt StatefulStandardNormalV2 StatefulTruncatedNormal
AnonymousSeedGenerator
"""

_NN = """
Conv2D Conv3D Conv Conv2DBackpropInput Conv3DBackpropInputV2 Conv2DBackpropInputV2 DepthwiseConv2dNative
DepthwiseConv2dNativeBackpropInput BiasAdd BiasAddV1 Relu Relu6 LeakyRelu Elu Selu Softmax LogSoftmax
MaxPool MaxPoolV2 MaxPool3D AvgPool AvgPool3D MaxPoolWithArgmax FractionalMaxPool FractionalAvgPool
FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3 BatchNormWithGlobalNormalization LRN L2Loss TopK TopKV2
InTopK InTopKV2 NthElement Dilation2D CTCGreedyDecoder CTCBeamSearchDecoder CTCLoss
SoftmaxCrossEntropyWithLogits SparseSoftmaxCrossEntropyWithLogits FusedPadConv2D FusedResizeAndPadConv2D
QuantizeAndDequantize QuantizeAndDequantizeV2 QuantizeAndDequantizeV3 QuantizeAndDequantizeV4
FakeQuantWithMinMaxArgs FakeQuantWithMinMaxVars FakeQuantWithMinMaxVarsPerChannel Dequantize QuantizeV2
UniformQuantize UniformDequantize UniformRequantize
"""

_ARRAY = """
Reshape Shape ShapeN Size Rank ExpandDims Squeeze Transpose ConjugateTranspose Concat ConcatV2
ConcatOffset Pack Unpack Split SplitV Slice StridedSlice Tile Pad PadV2 MirrorPad Fill Gather GatherV2
GatherNd ScatterNd ScatterNdNonAliasingAdd TensorScatterUpdate TensorScatterAdd TensorScatterSub
TensorScatterMax TensorScatterMin Where Unique UniqueV2 UniqueWithCounts UniqueWithCountsV2 OneHot
ReverseV2 Reverse ReverseSequence BroadcastTo BroadcastArgs BroadcastGradientArgs BatchToSpaceND
SpaceToBatchND SpaceToDepth DepthToSpace BatchToSpace SpaceToBatch InvertPermutation ListDiff Diag
DiagPart Roll ExtractImagePatches ExtractVolumePatches InplaceUpdate InplaceAdd InplaceSub
MatrixDiagPartV3 EditDistance SetSize DenseToDenseSetOperation DenseToSparseSetOperation
SparseToSparseSetOperation TensorStridedSliceUpdate ResourceStridedSliceAssign StridedSliceAssign
"""

_IMAGES = """
ResizeBilinear ResizeNearestNeighbor ResizeBicubic ResizeArea ScaleAndTranslate CropAndResize
NonMaxSuppression NonMaxSuppressionV2 NonMaxSuppressionV3 NonMaxSuppressionV4 NonMaxSuppressionV5
NonMaxSuppressionWithOverlaps CombinedNonMaxSuppression AdjustContrast AdjustContrastv2 AdjustHue
AdjustSaturation RGBToHSV HSVToRGB DecodeJpeg DecodeAndCropJpeg DecodePng DecodeImage DecodeBmp
DecodeGif EncodeJpeg EncodeJpegVariableQuality EncodePng ExtractJpegShape DrawBoundingBoxes
DrawBoundingBoxesV2 ExtractGlimpse ExtractGlimpseV2 ImageProjectiveTransformV2
ImageProjectiveTransformV3 SampleDistortedBoundingBox SampleDistortedBoundingBoxV2
StatelessSampleDistortedBoundingBox GenerateBoundingBoxProposals
"""

_STRINGS_AND_PARSING = """
StringJoin StringSplit StringSplitV2 StringToNumber AsString StringLength Substr StringLower StringUpper
StaticRegexReplace RegexReplace RegexFullMatch StaticRegexFullMatch StringStrip StringToHashBucket
StringToHashBucketFast StringToHashBucketStrong ReduceJoin UnicodeDecode UnicodeDecodeWithOffsets
UnicodeEncode UnicodeTranscode UnicodeScript StringNGrams DecodeBase64 EncodeBase64 Fingerprint
ParseExample ParseExampleV2 ParseSingleExample ParseSequenceExample ParseSequenceExampleV2
ParseSingleSequenceExample ParseTensor SerializeTensor DecodeRaw DecodePaddedRaw DecodeCSV
DecodeCompressed DecodeJSONExample
"""

_SPARSE_AND_RAGGED = """
SparseTensorDenseMatMul SparseToDense SparseReshape SparseFillEmptyRows SparseReorder SparseAdd
SparseTensorDenseAdd SparseConcat SparseSlice SparseReduceSum SparseReduceSumSparse SparseReduceMax
SparseReduceMaxSparse SparseSoftmax SparseCross SparseCrossV2 SparseCrossHashed SparseSplit
SparseDenseCwiseAdd SparseDenseCwiseMul SparseDenseCwiseDiv SparseSparseMaximum SparseSparseMinimum
SparseTensorSliceDataset SerializeSparse SerializeManySparse DeserializeSparse DeserializeManySparse
SparseSliceGrad SparseFillEmptyRowsGrad
RaggedTensorToTensor RaggedTensorToSparse RaggedTensorFromVariant RaggedTensorToVariant RaggedRange
RaggedGather RaggedCross RaggedFillEmptyRows
"""

ALLOWED_OPS: frozenset[str] = frozenset(
    " ".join([_STRUCTURE, _VARIABLES_AND_TABLES, _MATH, _NN, _ARRAY, _IMAGES, _STRINGS_AND_PARSING,
              _SPARSE_AND_RAGGED]).split()
) - {"SparseTensorSliceDataset"}  # a dataset op: like every tf.data op, not allowed

# The output streams PrintV2 may write to: the process's own stderr/stdout or TensorFlow's log.
PRINT_STREAMS = frozenset({"stderr", "stdout", "log(info)", "log(warning)", "log(error)"})

# Ops that rebuild or run code carried as data, named in refusals so the reason is clear.
RUNS_DATA_AS_CODE = frozenset({
    "DatasetFromGraph", "XlaCallModule", "XlaLaunch", "_XlaRun", "TPUPartitionedCall",
    "RemoteCall", "PyFunc", "PyFuncStateless", "EagerPyFunc", "BatchFunction", "SymbolicGradient",
})  # fmt: skip
