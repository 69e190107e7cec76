"""Part files of stage folders read into Spark. Local files go through Spark's Parquet reader; files on
object storage (URIs: this JVM has no S3 connector) through pyarrow in Python tasks, one task per file,
giving the rows and the schema Spark's reader would (every column nullable), so what a stage computes from
them, and writes, is the same bytes."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import ArrayType, DataType, MapType, StructField, StructType

from blending.stage_folder import is_listed, resolve


def read_parts(spark: SparkSession, parts: list[str], ddl: str | None = None) -> DataFrame:
    """The rows of Parquet files (paths or URIs, all of one schema), with the columns of `ddl` when given."""
    if not any(is_listed(p) for p in parts):
        reader = spark.read.schema(ddl) if ddl else spark.read
        return reader.parquet(*parts)
    schema = StructType.fromDDL(ddl) if ddl else _nullable(from_arrow_schema(read_schema(parts[0])))
    arrow_schema = to_arrow_schema(schema)
    paths = spark.createDataFrame(spark.sparkContext.parallelize([(p,) for p in parts], len(parts)), "path string")
    return paths.mapInArrow(_reader(arrow_schema), schema)


def read_schema(part: str) -> pa.Schema:
    fs, path = resolve(part)
    with fs.open_input_file(path) as f:
        return pq.read_schema(f)


def _reader(schema: pa.Schema):
    def read(batches):
        for batch in batches:
            for part in batch.column("path").to_pylist():
                fs, path = resolve(part)
                with fs.open_input_file(path) as f:
                    for rows in pq.ParquetFile(f).iter_batches(columns=schema.names):
                        yield from pa.Table.from_batches([rows]).select(schema.names).cast(schema).to_batches()
    return read


def _nullable(dtype: DataType) -> DataType:
    """What Spark's Parquet reader makes of a file's schema: every field, element and value nullable."""
    if isinstance(dtype, StructType):
        return StructType([StructField(f.name, _nullable(f.dataType), True, f.metadata) for f in dtype.fields])
    if isinstance(dtype, ArrayType):
        return ArrayType(_nullable(dtype.elementType), True)
    if isinstance(dtype, MapType):
        return MapType(_nullable(dtype.keyType), _nullable(dtype.valueType), True)
    return dtype
