//! SQL functions registered in every session (so users of `scalpels-trace sql` have them too):
//!
//! - `hist_merge(latency_hist)`: aggregate, the slot-by-slot sum of the log2 latency
//!   histograms of a group;
//! - `hist_quantile(hist, q)`: the `q` quantile (0..1) of a histogram, as a duration;
//! - `http_route(path)`: an HTTP request target's route, as in `http.parquet`'s `route` column
//!   (which runs written before that column get from it).
//!
//! `SELECT syscall, hist_quantile(hist_merge(latency_hist), 0.99) FROM syscalls GROUP BY 1`

use std::sync::Arc;

use arrow::{
    array::{
        Array as _, ArrayRef, AsArray as _, DictionaryArray, DurationNanosecondBuilder, ListArray,
        StringArray, UInt64Array,
    },
    buffer::OffsetBuffer,
    compute::cast,
    datatypes::{DataType, Field, Int32Type, TimeUnit, UInt64Type},
};
use datafusion::{
    common::{Result, ScalarValue, exec_err},
    logical_expr::{
        Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF,
        ScalarUDFImpl, Signature, Volatility, function::AccumulatorArgs,
    },
    prelude::SessionContext,
};

use super::latency::{add_histogram, histogram_quantile};

pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(AggregateUDF::from(HistMerge::default()));
    ctx.register_udf(ScalarUDF::from(HistQuantile::default()));
    ctx.register_udf(ScalarUDF::from(HttpRoute::default()));
}

fn histogram_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, true)))
}

/// Any list of integers (the tables' `list<uint64>`, or what a user built) as `list<uint64>`.
fn as_histograms(array: &ArrayRef) -> Result<ListArray> {
    match array.data_type() {
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            Ok(cast(array, &histogram_type())?.as_list::<i32>().clone())
        }
        other => exec_err!("expected a latency histogram (a list of counts), got {other}"),
    }
}

fn histogram_scalar(counts: &[u64]) -> ScalarValue {
    let values = Arc::new(UInt64Array::from(counts.to_vec()));
    let list = ListArray::new(
        Arc::new(Field::new_list_field(DataType::UInt64, true)),
        OffsetBuffer::from_lengths([counts.len()]),
        values,
        None,
    );
    ScalarValue::List(Arc::new(list))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct HistMerge {
    signature: Signature,
}

impl Default for HistMerge {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for HistMerge {
    fn name(&self) -> &str {
        "hist_merge"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(histogram_type())
    }

    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(HistSum::default()))
    }
}

#[derive(Debug, Default)]
struct HistSum {
    counts: Vec<u64>,
}

impl Accumulator for HistSum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let lists = as_histograms(&values[0])?;
        for row in 0..lists.len() {
            if lists.is_valid(row) {
                let counts = lists.value(row);
                add_histogram(
                    &mut self.counts,
                    counts.as_primitive::<UInt64Type>().values(),
                );
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![histogram_scalar(&self.counts)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(histogram_scalar(&self.counts))
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.counts.capacity() * size_of::<u64>()
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct HistQuantile {
    signature: Signature,
}

impl Default for HistQuantile {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for HistQuantile {
    fn name(&self) -> &str {
        "hist_quantile"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Duration(TimeUnit::Nanosecond))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let q = match &args.args[1] {
            ColumnarValue::Scalar(q) => match q.cast_to(&DataType::Float64)? {
                ScalarValue::Float64(Some(q)) if (0.0..=1.0).contains(&q) => q,
                _ => return exec_err!("hist_quantile: q must be a number between 0 and 1"),
            },
            ColumnarValue::Array(_) => {
                return exec_err!("hist_quantile: q must be a constant");
            }
        };
        let lists = as_histograms(&args.args[0].to_array(args.number_rows)?)?;
        let mut out = DurationNanosecondBuilder::with_capacity(lists.len());
        for row in 0..lists.len() {
            let quantile = lists
                .is_valid(row)
                .then(|| {
                    let counts = lists.value(row);
                    histogram_quantile(counts.as_primitive::<UInt64Type>().values(), q)
                })
                .flatten();
            out.append_option(quantile.map(|ns| ns.round() as i64));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct HttpRoute {
    signature: Signature,
}

impl Default for HttpRoute {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

fn string_dictionary() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

impl ScalarUDFImpl for HttpRoute {
    fn name(&self) -> &str {
        "http_route"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// A dictionary, like the `route` column it stands in for (so runs with and without the
    /// column union), and so that each distinct path is routed once.
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(string_dictionary())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let paths = args.args[0].to_array(args.number_rows)?;
        let paths = cast(&paths, &string_dictionary())?;
        let paths = paths.as_dictionary::<Int32Type>();
        let routes: StringArray = paths
            .values()
            .as_string::<i32>()
            .iter()
            .map(|path| path.map(wire::http::route))
            .collect();
        let routes = DictionaryArray::<Int32Type>::try_new(paths.keys().clone(), Arc::new(routes))?;
        Ok(ColumnarValue::Array(Arc::new(routes) as ArrayRef))
    }
}
